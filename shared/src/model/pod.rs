//! `Pod` (core/v1) and everything a pod spec holds.
//!
//! Field names, nesting and omission follow `k8s.io/api/core/v1` (see
//! [`super::fields`] for the mapping), so a manifest written for Kubernetes,
//! or the output of `kubectl get pod -o yaml`, decodes here and re-encodes
//! with the same meaning. Go's inlined structs (`ProbeHandler` inside
//! `Probe`, `LocalObjectReference` inside `ConfigMapKeySelector`,
//! `VolumeSource` inside `Volume`) are written out field by field because
//! the model does not use `#[serde(flatten)]`.
//!
//! Volume sources: `emptyDir`, `hostPath`, `configMap`, `secret`,
//! `persistentVolumeClaim`, `downwardAPI` and `projected` (the latter two
//! because every pod read back from a Kubernetes cluster carries a projected
//! `kube-api-access-*` volume). Any other source (`nfs`, `csi`, `ephemeral`,
//! `image`, the cloud disks, ...) is an unknown field and is refused by the
//! central unknown-field check.
//!
//! Not modelled either, so also refused as unknown fields:
//! `ephemeralContainers` and `ephemeralContainerStatuses` (added only through
//! the `ephemeralcontainers` subresource, which Flotilla does not serve),
//! `resourceClaims`, `resourceClaimStatuses` and `allocatedResourcesStatus`
//! (dynamic resource allocation), and alpha fields newer than Kubernetes
//! 1.33 (`fileKeyRef`, `podCertificate`, `hostnameOverride`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::fields::{is_false, is_zero};
use super::{IntOrString, LabelSelector, ObjectMeta, Time, resource};
use crate::quantity::Quantity;

/// Resource name (`cpu`, `memory`, `ephemeral-storage`, `pods`, extended
/// resources such as `example.com/gpio`) to quantity.
pub type ResourceList = BTreeMap<String, Quantity>;

/// A Pod: one or more containers scheduled together onto one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}
resource!(
    Pod,
    group = "",
    version = "v1",
    plural = "pods",
    namespaced = true
);

impl Pod {
    /// Whether the pod has reached `Succeeded` or `Failed`: its containers
    /// will never run again and it only waits to be deleted.
    pub fn is_terminal(&self) -> bool {
        self.status.phase == pod_phase::SUCCEEDED || self.status.phase == pod_phase::FAILED
    }

    /// Whether the pod has been bound to a node.
    pub fn is_bound(&self) -> bool {
        !self.spec.node_name.is_empty()
    }

    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status
            .condition(pod_condition::READY)
            .is_some_and(|c| c.status == condition_status::TRUE)
    }
}

/// `PodTemplateSpec`: what ReplicaSets, Deployments, DaemonSets and Jobs stamp out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
}

/// `PodSpec`: the desired state of a pod.
///
/// Every Kubernetes field that appears in ordinary manifests and in
/// `kubectl`-generated YAML is accepted and round-trips, but Flotilla does
/// not act on these (they are kept as written and returned on read):
/// `serviceAccountName`, `serviceAccount`, `automountServiceAccountToken`
/// (no API credentials are mounted into containers), `schedulerName` (there
/// is one scheduler), `priority`, `priorityClassName`, `preemptionPolicy`
/// (no preemption), `readinessGates`, `runtimeClassName`, `overhead`,
/// `enableServiceLinks`, `setHostnameAsFQDN`, `subdomain`, `hostUsers`,
/// `os` and `resources` (pod-level).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Run to completion in order before `containers` start; those with
    /// `restartPolicy: Always` are sidecars that keep running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    /// See [`restart_policy`]; `Always` when empty (defaulted by admission).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restart_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// See [`dns_policy`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dns_policy: String,
    /// Labels the node must carry (all of them) for the pod to be placed there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Deprecated alias of `serviceAccountName`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// The node the pod is bound to; empty until scheduled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    #[serde(default, skip_serializing_if = "is_false", rename = "hostPID")]
    pub host_pid: bool,
    #[serde(default, skip_serializing_if = "is_false", rename = "hostIPC")]
    pub host_ipc: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_process_namespace: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subdomain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheduler_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<HostAlias>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<PodDnsConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readiness_gates: Vec<PodReadinessGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_service_links: Option<bool>,
    /// `PreemptLowerPriority` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overhead: ResourceList,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "setHostnameAsFQDN"
    )]
    pub set_hostname_as_fqdn: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<PodOs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_users: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduling_gates: Vec<PodSchedulingGate>,
    /// Pod-level requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl PodSpec {
    /// Init containers first, in order, then the regular containers.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        self.init_containers.iter().chain(&self.containers)
    }

    /// The ConfigMaps and Secrets (in the pod's namespace) this spec uses:
    /// through volumes, projected volumes, `env`, `envFrom` and
    /// `imagePullSecrets`.
    pub fn references(&self) -> PodReferences {
        let mut refs = PodReferences::default();
        for volume in &self.volumes {
            if let Some(source) = &volume.config_map {
                refs.config_maps.insert(source.name.clone());
            }
            if let Some(source) = &volume.secret {
                refs.secrets.insert(source.secret_name.clone());
            }
            for projection in volume.projected.iter().flat_map(|p| &p.sources) {
                if let Some(source) = &projection.config_map {
                    refs.config_maps.insert(source.name.clone());
                }
                if let Some(source) = &projection.secret {
                    refs.secrets.insert(source.name.clone());
                }
            }
        }
        for container in self.all_containers() {
            for from in container.env.iter().filter_map(|e| e.value_from.as_ref()) {
                if let Some(selector) = &from.config_map_key_ref {
                    refs.config_maps.insert(selector.name.clone());
                }
                if let Some(selector) = &from.secret_key_ref {
                    refs.secrets.insert(selector.name.clone());
                }
            }
            for env_from in &container.env_from {
                if let Some(source) = &env_from.config_map_ref {
                    refs.config_maps.insert(source.name.clone());
                }
                if let Some(source) = &env_from.secret_ref {
                    refs.secrets.insert(source.name.clone());
                }
            }
        }
        for reference in &self.image_pull_secrets {
            refs.secrets.insert(reference.name.clone());
        }
        refs.config_maps.remove("");
        refs.secrets.remove("");
        refs
    }
}

/// What [`PodSpec::references`] answers: names in the pod's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodReferences {
    pub config_maps: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

/// `LocalObjectReference`: a reference by name to an object in the pod's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// `HostAlias`: an extra `/etc/hosts` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostAlias {
    #[serde(default)]
    pub ip: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}

/// `PodDNSConfig`: resolver settings merged with those `dnsPolicy` produces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDnsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PodDnsConfigOption>,
}

/// One `resolv.conf` option (`ndots: "2"`, `edns0`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodDnsConfigOption {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `PodReadinessGate`: an extra condition type that must be `True` for readiness.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReadinessGate {
    #[serde(default)]
    pub condition_type: String,
}

/// `PodOS`: `linux` or `windows`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodOs {
    #[serde(default)]
    pub name: String,
}

/// `PodSchedulingGate`: while any is present the pod is not scheduled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSchedulingGate {
    #[serde(default)]
    pub name: String,
}

// ---------------------------------------------------------------------------
// Containers

/// `Container`. Flotilla keeps but does not act on `resizePolicy`,
/// `volumeDevices`, `stdin`, `stdinOnce` and `tty` (no attach).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Replaces the image's cmd.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Always written, as Kubernetes does (`resources: {}`).
    #[serde(default)]
    pub resources: ResourceRequirements,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resize_policy: Vec<ContainerResizePolicy>,
    /// Only `Always`, and only on init containers: makes it a sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_devices: Vec<VolumeDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub termination_message_path: String,
    /// `File` or `FallbackToLogsOnError`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub termination_message_policy: String,
    /// See [`image_pull_policy`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_pull_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdin: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdin_once: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tty: bool,
}

impl Container {
    /// Whether this (init) container is a sidecar: `restartPolicy: Always`.
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some(restart_policy::ALWAYS)
    }
}

/// `ContainerPort`. `protocol` is `TCP` (default), `UDP` or `SCTP`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub host_port: i32,
    #[serde(default)]
    pub container_port: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty", rename = "hostIP")]
    pub host_ip: String,
}

/// `EnvVar`: `value` (with `$(VAR)` expansion) or `valueFrom`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// `EnvVarSource`: exactly one of its fields is set (checked by validation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
}

/// `ObjectFieldSelector`: a field of the pod (`metadata.name`, `status.podIP`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldSelector {
    /// `v1` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default)]
    pub field_path: String,
}

/// `ResourceFieldSelector`: a container's request or limit (`limits.memory`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFieldSelector {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    #[serde(default)]
    pub resource: String,
    /// The value is divided by this; `1` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divisor: Option<Quantity>,
}

/// `ConfigMapKeySelector`: one key of a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeySelector {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// `SecretKeySelector`: one key of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// `EnvFromSource`: every key of a ConfigMap or Secret as variables, each
/// name prefixed with `prefix`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapEnvSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretEnvSource>,
}

/// `ConfigMapEnvSource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapEnvSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// `SecretEnvSource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretEnvSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// `ResourceRequirements`: what the scheduler reserves (`requests`) and the
/// cgroup enforces (`limits`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: ResourceList,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: ResourceList,
    /// Dynamic resource allocation claims; kept, not acted on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ResourceClaim>,
}

/// `ResourceClaim`: a reference to one of the pod's `resourceClaims`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceClaim {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request: String,
}

/// `ContainerResizePolicy`: whether changing a resource restarts the container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResizePolicy {
    #[serde(default)]
    pub resource_name: String,
    #[serde(default)]
    pub restart_policy: String,
}

/// `VolumeMount`. `mountPropagation` is `None`, `HostToContainer` or `Bidirectional`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// `Disabled`, `IfPossible` or `Enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive_read_only: Option<String>,
    #[serde(default)]
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_propagation: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_path_expr: String,
}

/// `VolumeDevice`: a raw block volume exposed as a device node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeDevice {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub device_path: String,
}

// ---------------------------------------------------------------------------
// Probes and lifecycle hooks

/// `Probe`: Go's inlined `ProbeHandler` (`exec`, `httpGet`, `tcpSocket`,
/// `grpc`; exactly one is set) followed by the timing fields. Zero timing
/// fields mean "use the default" and are omitted, as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcAction>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub initial_delay_seconds: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout_seconds: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub period_seconds: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub success_threshold: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failure_threshold: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
}

impl Probe {
    /// The handlers that are set, in field order. Validation requires
    /// exactly one; the prober uses the first.
    pub fn handlers(&self) -> Vec<HandlerRef<'_>> {
        let mut handlers = Vec::with_capacity(1);
        handlers.extend(self.exec.as_ref().map(HandlerRef::Exec));
        handlers.extend(self.http_get.as_ref().map(HandlerRef::HttpGet));
        handlers.extend(self.tcp_socket.as_ref().map(HandlerRef::TcpSocket));
        handlers.extend(self.grpc.as_ref().map(HandlerRef::Grpc));
        handlers
    }
}

/// One action of a [`Probe`] or a [`LifecycleHandler`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerRef<'a> {
    Exec(&'a ExecAction),
    HttpGet(&'a HttpGetAction),
    TcpSocket(&'a TcpSocketAction),
    Grpc(&'a GrpcAction),
    Sleep(&'a SleepAction),
}

/// `ExecAction`: a command run inside the container, not through a shell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecAction {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// `HTTPGetAction`. `port` is a number or the name of a container port;
/// `scheme` is `HTTP` (default) or `HTTPS`; `host` defaults to the pod IP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default)]
    pub port: IntOrString,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

/// `HTTPHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// `TCPSocketAction`: succeeds when a connection opens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSocketAction {
    #[serde(default)]
    pub port: IntOrString,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

/// `GRPCAction`: the standard gRPC health-checking protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcAction {
    #[serde(default)]
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// `SleepAction`: a lifecycle hook that only waits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SleepAction {
    #[serde(default)]
    pub seconds: i64,
}

/// `Lifecycle`: hooks run after a container starts and before it is stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<LifecycleHandler>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHandler>,
    /// Signal name (`SIGTERM`) sent on stop instead of the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// `LifecycleHandler`: exactly one of its fields is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHandler {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<SleepAction>,
}

impl LifecycleHandler {
    /// The handlers that are set, in field order (validation requires one).
    pub fn handlers(&self) -> Vec<HandlerRef<'_>> {
        let mut handlers = Vec::with_capacity(1);
        handlers.extend(self.exec.as_ref().map(HandlerRef::Exec));
        handlers.extend(self.http_get.as_ref().map(HandlerRef::HttpGet));
        handlers.extend(self.tcp_socket.as_ref().map(HandlerRef::TcpSocket));
        handlers.extend(self.sleep.as_ref().map(HandlerRef::Sleep));
        handlers
    }
}

// ---------------------------------------------------------------------------
// Security contexts

/// `SecurityContext` of one container; set fields override the pod's.
/// Flotilla keeps but does not act on `seLinuxOptions`, `windowsOptions`
/// and `appArmorProfile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_options: Option<SeLinuxOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_options: Option<WindowsSecurityContextOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// `Default` or `Unmasked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_mount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<AppArmorProfile>,
}

/// `Capabilities`: names without the `CAP_` prefix (`NET_ADMIN`, or `ALL` in `drop`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// `SeccompProfile`: `type` is `RuntimeDefault`, `Unconfined` or
/// `Localhost` (then `localhostProfile` names a file on the node).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// `AppArmorProfile`: same shape as [`SeccompProfile`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppArmorProfile {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// `SELinuxOptions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeLinuxOptions {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub level: String,
}

/// `WindowsSecurityContextOptions`: accepted so shared manifests decode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowsSecurityContextOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmsa_credential_spec_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmsa_credential_spec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_process: Option<bool>,
}

/// `PodSecurityContext`: defaults for every container of the pod, plus
/// pod-wide settings (`fsGroup`, `sysctls`, `supplementalGroups`).
/// Flotilla keeps but does not act on `seLinuxOptions`, `windowsOptions`,
/// `appArmorProfile` and `seLinuxChangePolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_options: Option<SeLinuxOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_options: Option<WindowsSecurityContextOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
    /// `Merge` (default) or `Strict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplemental_groups_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<Sysctl>,
    /// `OnRootMismatch` or `Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group_change_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<AppArmorProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_change_policy: Option<String>,
}

/// `Sysctl`: a namespaced kernel parameter set for the pod (`net.ipv4.ip_forward`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sysctl {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

// ---------------------------------------------------------------------------
// Scheduling: affinity, tolerations, spread

/// `Affinity`: node affinity, pod affinity and pod anti-affinity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_affinity: Option<PodAffinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_anti_affinity: Option<PodAntiAffinity>,
}

/// `NodeAffinity`: hard (`required...`) and soft (`preferred...`) node rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredSchedulingTerm>,
}

/// `NodeSelector`: the terms are ORed; a node matches if any term matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// `NodeSelectorTerm`: every requirement must hold (ANDed). An empty term
/// matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    /// Requirements on node labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// Requirements on node fields (only `metadata.name` is supported by Kubernetes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_fields: Vec<NodeSelectorRequirement>,
}

/// `NodeSelectorRequirement`: `operator` is `In`, `NotIn`, `Exists`,
/// `DoesNotExist`, `Gt` or `Lt` (the last two compare one integer value).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorRequirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `PreferredSchedulingTerm`: `weight` 1–100 added to a node's score when it matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreferredSchedulingTerm {
    #[serde(default)]
    pub weight: i32,
    #[serde(default)]
    pub preference: NodeSelectorTerm,
}

/// `PodAffinity`: place the pod near pods matching the terms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinity {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_during_scheduling_ignored_during_execution: Vec<PodAffinityTerm>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_during_scheduling_ignored_during_execution: Vec<WeightedPodAffinityTerm>,
}

/// `PodAntiAffinity`: keep the pod away from pods matching the terms.
/// Same shape as [`PodAffinity`].
pub type PodAntiAffinity = PodAffinity;

/// `PodAffinityTerm`: the pods selected by `labelSelector` in `namespaces`
/// (or those matching `namespaceSelector`; the pod's own namespace when
/// both are empty), grouped by the node label `topologyKey`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinityTerm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub topology_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatch_label_keys: Vec<String>,
}

/// `WeightedPodAffinityTerm`: a soft pod (anti-)affinity rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedPodAffinityTerm {
    #[serde(default)]
    pub weight: i32,
    #[serde(default)]
    pub pod_affinity_term: PodAffinityTerm,
}

/// `Toleration`: lets the pod run on nodes with a matching taint.
/// `operator` is `Equal` (default) or `Exists`; an empty `key` with `Exists`
/// tolerates every taint; an empty `effect` matches every effect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operator: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub effect: String,
    /// For `NoExecute` only: how long the pod stays bound after the taint
    /// appears; forever when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Whether this toleration tolerates `taint`, with Kubernetes'
    /// `ToleratesTaint` rules. An unknown operator tolerates nothing.
    pub fn tolerates(&self, taint: &super::Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "" | toleration_operator::EQUAL => self.value == taint.value,
            toleration_operator::EXISTS => true,
            _ => false,
        }
    }
}

/// `TopologySpreadConstraint`: keep matching pods evenly spread over the
/// values of the node label `topologyKey`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpreadConstraint {
    #[serde(default)]
    pub max_skew: i32,
    #[serde(default)]
    pub topology_key: String,
    /// `DoNotSchedule` or `ScheduleAnyway`.
    #[serde(default)]
    pub when_unsatisfiable: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_domains: Option<i32>,
    /// `Honor` or `Ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity_policy: Option<String>,
    /// `Honor` or `Ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_taints_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_label_keys: Vec<String>,
}

// ---------------------------------------------------------------------------
// Volumes

/// `Volume`: a name plus Go's inlined `VolumeSource`, of which exactly one
/// field is set (see the module documentation for the supported sources).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "downwardAPI"
    )]
    pub downward_api: Option<DownwardApiVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<ProjectedVolumeSource>,
}

impl Volume {
    /// The sources that are set, in field order. Validation requires exactly one.
    pub fn sources(&self) -> Vec<VolumeSourceRef<'_>> {
        let mut sources = Vec::with_capacity(1);
        sources.extend(self.host_path.as_ref().map(VolumeSourceRef::HostPath));
        sources.extend(self.empty_dir.as_ref().map(VolumeSourceRef::EmptyDir));
        sources.extend(self.secret.as_ref().map(VolumeSourceRef::Secret));
        sources.extend(
            self.persistent_volume_claim
                .as_ref()
                .map(VolumeSourceRef::PersistentVolumeClaim),
        );
        sources.extend(self.downward_api.as_ref().map(VolumeSourceRef::DownwardApi));
        sources.extend(self.config_map.as_ref().map(VolumeSourceRef::ConfigMap));
        sources.extend(self.projected.as_ref().map(VolumeSourceRef::Projected));
        sources
    }
}

/// One source of a [`Volume`], borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeSourceRef<'a> {
    HostPath(&'a HostPathVolumeSource),
    EmptyDir(&'a EmptyDirVolumeSource),
    Secret(&'a SecretVolumeSource),
    PersistentVolumeClaim(&'a PersistentVolumeClaimVolumeSource),
    DownwardApi(&'a DownwardApiVolumeSource),
    ConfigMap(&'a ConfigMapVolumeSource),
    Projected(&'a ProjectedVolumeSource),
}

/// `HostPathVolumeSource`: `type` is empty, `DirectoryOrCreate`,
/// `Directory`, `FileOrCreate`, `File`, `Socket`, `CharDevice` or `BlockDevice`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPathVolumeSource {
    #[serde(default)]
    pub path: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// `EmptyDirVolumeSource`: `medium` is empty (node disk) or `Memory` (tmpfs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDirVolumeSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub medium: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Quantity>,
}

/// `SecretVolumeSource`: every key (or only `items`) of a Secret as files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolumeSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    /// File mode bits; `0644` when absent. See [`file_mode`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file_mode::deserialize"
    )]
    pub default_mode: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// `ConfigMapVolumeSource`: every key (or only `items`) of a ConfigMap as files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapVolumeSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file_mode::deserialize"
    )]
    pub default_mode: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// `KeyToPath`: project one key to a relative file path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyToPath {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub path: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file_mode::deserialize"
    )]
    pub mode: Option<i32>,
}

/// `PersistentVolumeClaimVolumeSource`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimVolumeSource {
    #[serde(default)]
    pub claim_name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
}

/// `DownwardAPIVolumeSource`: pod fields and container resources as files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownwardApiVolumeSource {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<DownwardApiVolumeFile>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file_mode::deserialize"
    )]
    pub default_mode: Option<i32>,
}

/// `DownwardAPIVolumeFile`: one file; `fieldRef` or `resourceFieldRef` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownwardApiVolumeFile {
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file_mode::deserialize"
    )]
    pub mode: Option<i32>,
}

/// `ProjectedVolumeSource`: several sources merged into one directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectedVolumeSource {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<VolumeProjection>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "file_mode::deserialize"
    )]
    pub default_mode: Option<i32>,
}

/// `VolumeProjection`: exactly one field is set. Flotilla keeps but does
/// not act on `serviceAccountToken` and `clusterTrustBundle`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeProjection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretProjection>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "downwardAPI"
    )]
    pub downward_api: Option<DownwardApiProjection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapProjection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_token: Option<ServiceAccountTokenProjection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_trust_bundle: Option<ClusterTrustBundleProjection>,
}

/// `SecretProjection`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretProjection {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// `ConfigMapProjection`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapProjection {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// `DownwardAPIProjection`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownwardApiProjection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<DownwardApiVolumeFile>,
}

/// `ServiceAccountTokenProjection`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTokenProjection {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i64>,
    #[serde(default)]
    pub path: String,
}

/// `ClusterTrustBundleProjection`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTrustBundleProjection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    #[serde(default)]
    pub path: String,
}

/// Decoding of file mode bits (`defaultMode`, `mode`).
///
/// Kubernetes reads YAML 1.1, where `defaultMode: 0644` is the octal number
/// 420; the YAML 1.2 reader used here leaves a leading-zero scalar as the
/// string `"0644"`. So a mode may also be a string of octal digits with a
/// leading `0`; it is re-encoded as the JSON number Kubernetes would write.
pub mod file_mode {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{self, Unexpected, Visitor};

    /// `deserialize_with` for `Option<i32>` mode fields.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i32>, D::Error> {
        deserializer.deserialize_option(ModeVisitor)
    }

    struct ModeVisitor;

    impl<'de> Visitor<'de> for ModeVisitor {
        type Value = Option<i32>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a file mode: an integer, or octal digits after a leading 0")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            i32::try_from(value)
                .map(Some)
                .map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            i32::try_from(value)
                .map(Some)
                .map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            let octal = value.strip_prefix('0').filter(|digits| {
                !digits.is_empty() && digits.bytes().all(|b| matches!(b, b'0'..=b'7'))
            });
            octal
                .and_then(|digits| i32::from_str_radix(digits, 8).ok())
                .map(Some)
                .ok_or_else(|| E::invalid_value(Unexpected::Str(value), &self))
        }
    }
}

// ---------------------------------------------------------------------------
// Status

/// `PodStatus`, written by the scheduler (the `PodScheduled` condition) and
/// by the agent running the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    /// See [`pod_phase`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A CamelCase word (`Evicted`, `NodeLost`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nominated_node_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty", rename = "hostIP")]
    pub host_ip: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "hostIPs")]
    pub host_ips: Vec<HostIp>,
    #[serde(default, skip_serializing_if = "String::is_empty", rename = "podIP")]
    pub pod_ip: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    /// See [`qos_class`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub qos_class: String,
    /// Deprecated in-place resize state (`Proposed`, `InProgress`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resize: String,
}

impl PodStatus {
    /// The condition of type `type_` ([`pod_condition`]), if present.
    pub fn condition(&self, type_: &str) -> Option<&PodCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The status of the (init or regular) container named `name`.
    pub fn container_status(&self, name: &str) -> Option<&ContainerStatus> {
        self.init_container_statuses
            .iter()
            .chain(&self.container_statuses)
            .find(|s| s.name == name)
    }
}

/// `PodCondition`. `status` is one of [`condition_status`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    /// See [`pod_condition`].
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `HostIP`: one of the node's addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostIp {
    #[serde(default)]
    pub ip: String,
}

/// `PodIP`: one of the pod's addresses (one per IP family).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodIp {
    #[serde(default)]
    pub ip: String,
}

/// `ContainerStatus`. `ready`, `restartCount`, `image`, `imageID`, `state`
/// and `lastState` are always written, as Kubernetes does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: ContainerState,
    #[serde(default)]
    pub last_state: ContainerState,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub restart_count: i32,
    #[serde(default)]
    pub image: String,
    #[serde(default, rename = "imageID")]
    pub image_id: String,
    /// `<runtime>://<id>`, e.g. `containerd://4a1f...`.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        rename = "containerID"
    )]
    pub container_id: String,
    /// Whether the startup probe (if any) has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocated_resources: ResourceList,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMountStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ContainerUser>,
    /// The signal the runtime will send on stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// `ContainerState`: at most one of `waiting`, `running`, `terminated` is
/// set; none means waiting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ContainerStateWaiting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<ContainerStateRunning>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<ContainerStateTerminated>,
}

/// `ContainerStateWaiting`: `reason` such as `ContainerCreating`,
/// `ImagePullBackOff`, `CrashLoopBackOff`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateWaiting {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `ContainerStateRunning`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateRunning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
}

/// `ContainerStateTerminated`: `reason` such as `Completed`, `Error`, `OOMKilled`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateTerminated {
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub signal: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        rename = "containerID"
    )]
    pub container_id: String,
}

/// `VolumeMountStatus`: a mount as the runtime made it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMountStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive_read_only: Option<String>,
}

/// `ContainerUser`: the identity the container's first process runs as.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<LinuxContainerUser>,
}

/// `LinuxContainerUser`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxContainerUser {
    #[serde(default)]
    pub uid: i64,
    #[serde(default)]
    pub gid: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
}

// ---------------------------------------------------------------------------
// Well-known values

/// `PodSpec.restartPolicy` (and `Always` for sidecar init containers).
pub mod restart_policy {
    pub const ALWAYS: &str = "Always";
    pub const ON_FAILURE: &str = "OnFailure";
    pub const NEVER: &str = "Never";
}

/// `PodStatus.phase`.
pub mod pod_phase {
    pub const PENDING: &str = "Pending";
    pub const RUNNING: &str = "Running";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const FAILED: &str = "Failed";
    pub const UNKNOWN: &str = "Unknown";
}

/// `PodCondition.type`.
pub mod pod_condition {
    pub const POD_SCHEDULED: &str = "PodScheduled";
    pub const POD_READY_TO_START_CONTAINERS: &str = "PodReadyToStartContainers";
    pub const INITIALIZED: &str = "Initialized";
    pub const CONTAINERS_READY: &str = "ContainersReady";
    pub const READY: &str = "Ready";
    pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
}

/// The `status` of any Kubernetes condition (pods, nodes, workloads).
pub mod condition_status {
    pub const TRUE: &str = "True";
    pub const FALSE: &str = "False";
    pub const UNKNOWN: &str = "Unknown";
}

/// `Container.imagePullPolicy`.
pub mod image_pull_policy {
    pub const ALWAYS: &str = "Always";
    pub const IF_NOT_PRESENT: &str = "IfNotPresent";
    pub const NEVER: &str = "Never";
}

/// `PodSpec.dnsPolicy`.
pub mod dns_policy {
    pub const CLUSTER_FIRST: &str = "ClusterFirst";
    pub const CLUSTER_FIRST_WITH_HOST_NET: &str = "ClusterFirstWithHostNet";
    pub const DEFAULT: &str = "Default";
    pub const NONE: &str = "None";
}

/// `PodStatus.qosClass`.
pub mod qos_class {
    pub const GUARANTEED: &str = "Guaranteed";
    pub const BURSTABLE: &str = "Burstable";
    pub const BEST_EFFORT: &str = "BestEffort";
}

/// `Toleration.operator`.
pub mod toleration_operator {
    pub const EQUAL: &str = "Equal";
    pub const EXISTS: &str = "Exists";
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::model::Taint;

    /// `null` means absent in Kubernetes (the manifest layer drops it before
    /// typed decoding), so the expected re-encoding has no nulls.
    fn without_nulls(value: Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k, without_nulls(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
            other => other,
        }
    }

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

    /// A pod as `kubectl get pod -o json` prints it from a recent cluster,
    /// with most of the spec populated.
    fn kubectl_pod() -> Value {
        serde_json::from_str(
            r#"{
          "apiVersion": "v1",
          "kind": "Pod",
          "metadata": {
            "name": "sensor-gateway-7c9f5d8b6-x2k4p",
            "generateName": "sensor-gateway-7c9f5d8b6-",
            "namespace": "edge",
            "uid": "5f0e6f3c-2b7d-4f49-9a1e-0c3f6f1b2a11",
            "resourceVersion": "48213",
            "creationTimestamp": "2026-11-21T14:16:28Z",
            "labels": {"app": "sensor-gateway", "pod-template-hash": "7c9f5d8b6"},
            "annotations": {"flotilla.io/rollout": "3"},
            "ownerReferences": [{
              "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "sensor-gateway-7c9f5d8b6",
              "uid": "0d5c3b7a-96b1-4d3e-8c21-2f5b9e4c7d10", "controller": true, "blockOwnerDeletion": true
            }]
          },
          "spec": {
            "initContainers": [
              {
                "name": "migrate",
                "image": "registry.local/gateway-migrate:1.4",
                "command": ["/bin/migrate", "--once"],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
              },
              {
                "name": "log-shipper",
                "image": "registry.local/shipper:0.9",
                "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                "volumeMounts": [{"name": "logs", "mountPath": "/var/log/app", "readOnly": true}],
                "imagePullPolicy": "IfNotPresent"
              }
            ],
            "containers": [{
              "name": "gateway",
              "image": "registry.local/sensor-gateway:2.1.0",
              "args": ["--listen=:8080", "--bus=/dev/i2c-1"],
              "workingDir": "/srv",
              "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "modbus", "containerPort": 502, "hostPort": 502, "hostIP": "0.0.0.0", "protocol": "TCP"}
              ],
              "envFrom": [
                {"configMapRef": {"name": "gateway-config"}},
                {"prefix": "CRED_", "secretRef": {"name": "gateway-creds", "optional": true}}
              ],
              "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"containerName": "gateway", "resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "SITE", "valueFrom": {"configMapKeyRef": {"name": "site", "key": "id", "optional": false}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "gateway-creds", "key": "token"}}}
              ],
              "resources": {
                "limits": {"cpu": "500m", "memory": "128Mi"},
                "requests": {"cpu": "100m", "memory": "64Mi"}
              },
              "volumeMounts": [
                {"name": "config", "mountPath": "/etc/gateway", "readOnly": true},
                {"name": "cache", "mountPath": "/var/cache/gateway"},
                {"name": "logs", "mountPath": "/var/log/app", "subPath": "gateway", "mountPropagation": "None"},
                {"name": "kube-api-access-7dz4w", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
              ],
              "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP",
                            "httpHeaders": [{"name": "X-Probe", "value": "liveness"}]},
                "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                "successThreshold": 1, "failureThreshold": 3
              },
              "readinessProbe": {
                "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
                "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3
              },
              "startupProbe": {
                "exec": {"command": ["/bin/check", "--startup"]},
                "periodSeconds": 2, "failureThreshold": 30, "terminationGracePeriodSeconds": 10
              },
              "lifecycle": {
                "postStart": {"exec": {"command": ["/bin/announce"]}},
                "preStop": {"sleep": {"seconds": 5}}
              },
              "securityContext": {
                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                "privileged": false,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "runAsNonRoot": true,
                "procMount": "Default",
                "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/gateway.json"}
              },
              "terminationMessagePath": "/dev/termination-log",
              "terminationMessagePolicy": "FallbackToLogsOnError",
              "imagePullPolicy": "Always",
              "stdin": true,
              "tty": true
            },
            {
              "name": "grpc-sidecar",
              "image": "registry.local/grpc-health:1",
              "resources": {},
              "livenessProbe": {"grpc": {"port": 9090, "service": "health"}},
              "readinessProbe": {"tcpSocket": {"port": 9090, "host": "127.0.0.1"}},
              "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": 9091}}}
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "activeDeadlineSeconds": 86400,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "automountServiceAccountToken": true,
            "nodeName": "pi-hall-3",
            "hostNetwork": true,
            "hostPID": true,
            "hostIPC": true,
            "shareProcessNamespace": false,
            "securityContext": {
              "runAsUser": 1000,
              "runAsGroup": 1000,
              "runAsNonRoot": true,
              "fsGroup": 2000,
              "supplementalGroups": [20, 44],
              "fsGroupChangePolicy": "OnRootMismatch",
              "seccompProfile": {"type": "RuntimeDefault"},
              "sysctls": [{"name": "net.ipv4.ping_group_range", "value": "0 2147483647"}]
            },
            "imagePullSecrets": [{"name": "registry-local"}],
            "hostname": "gateway",
            "subdomain": "sensors",
            "affinity": {
              "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                  "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64", "arm"]}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["pi-hall-3"]}]}
                  ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                  {"weight": 50, "preference": {"matchExpressions": [{"key": "flotilla.io/i2c", "operator": "Exists"}]}}
                ]
              },
              "podAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{
                  "weight": 20,
                  "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app": "mqtt-bridge"}},
                    "namespaces": ["edge", "infra"],
                    "topologyKey": "kubernetes.io/hostname"
                  }
                }]
              },
              "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                  "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["sensor-gateway"]}]},
                  "topologyKey": "topology.kubernetes.io/zone",
                  "namespaceSelector": {},
                  "matchLabelKeys": ["pod-template-hash"]
                }]
              }
            },
            "schedulerName": "default-scheduler",
            "tolerations": [
              {"key": "flotilla.io/battery", "operator": "Equal", "value": "low", "effect": "NoSchedule"},
              {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
              {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["broker.local"]}],
            "priorityClassName": "edge-critical",
            "priority": 1000000,
            "dnsConfig": {"nameservers": ["10.0.0.53"], "searches": ["edge.svc"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
            "readinessGates": [{"conditionType": "flotilla.io/link-up"}],
            "runtimeClassName": "crun",
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "topologySpreadConstraints": [{
              "maxSkew": 1,
              "topologyKey": "topology.kubernetes.io/zone",
              "whenUnsatisfiable": "ScheduleAnyway",
              "labelSelector": {"matchLabels": {"app": "sensor-gateway"}},
              "minDomains": 2,
              "nodeTaintsPolicy": "Honor",
              "matchLabelKeys": ["pod-template-hash"]
            }],
            "os": {"name": "linux"},
            "volumes": [
              {"name": "config", "configMap": {"name": "gateway-config", "items": [{"key": "gateway.toml", "path": "gateway.toml", "mode": 420}], "defaultMode": 292, "optional": false}},
              {"name": "creds", "secret": {"secretName": "gateway-creds", "items": [{"key": "token", "path": "token"}], "defaultMode": 256, "optional": true}},
              {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
              {"name": "scratch", "emptyDir": {}},
              {"name": "logs", "hostPath": {"path": "/var/log/flotilla", "type": "DirectoryOrCreate"}},
              {"name": "data", "persistentVolumeClaim": {"claimName": "gateway-data", "readOnly": true}},
              {"name": "podinfo", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}}], "defaultMode": 420}},
              {"name": "kube-api-access-7dz4w", "projected": {
                "defaultMode": 420,
                "sources": [
                  {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                  {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                  {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]
              }}
            ]
          },
          "status": {
            "phase": "Running",
            "conditions": [
              {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-21T14:16:31Z"},
              {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-21T14:16:40Z"},
              {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-21T14:16:52Z"},
              {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-21T14:16:52Z"},
              {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-21T14:16:28Z"}
            ],
            "hostIP": "192.168.1.43",
            "hostIPs": [{"ip": "192.168.1.43"}],
            "podIP": "192.168.1.43",
            "podIPs": [{"ip": "192.168.1.43"}, {"ip": "fd00::43"}],
            "startTime": "2026-11-21T14:16:28Z",
            "initContainerStatuses": [
              {
                "name": "migrate",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-11-21T14:16:35Z", "finishedAt": "2026-11-21T14:16:39Z", "containerID": "crun://2b1f"}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": "registry.local/gateway-migrate:1.4",
                "imageID": "registry.local/gateway-migrate@sha256:9a7c",
                "containerID": "crun://2b1f",
                "started": false
              },
              {
                "name": "log-shipper",
                "state": {"running": {"startedAt": "2026-11-21T14:16:40Z"}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": "registry.local/shipper:0.9",
                "imageID": "registry.local/shipper@sha256:1c2d",
                "containerID": "crun://77aa",
                "started": true,
                "volumeMounts": [{"name": "logs", "mountPath": "/var/log/app", "readOnly": true, "recursiveReadOnly": "Disabled"}]
              }
            ],
            "containerStatuses": [
              {
                "name": "gateway",
                "state": {"running": {"startedAt": "2026-11-21T14:16:45Z"}},
                "lastState": {"terminated": {"exitCode": 137, "signal": 9, "reason": "OOMKilled", "message": "out of memory", "startedAt": "2026-11-21T14:16:41Z", "finishedAt": "2026-11-21T14:16:44Z", "containerID": "crun://51e0"}},
                "ready": true,
                "restartCount": 1,
                "image": "registry.local/sensor-gateway:2.1.0",
                "imageID": "registry.local/sensor-gateway@sha256:4f3e",
                "containerID": "crun://a81b",
                "started": true,
                "allocatedResources": {"cpu": "100m", "memory": "64Mi"},
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
                "user": {"linux": {"uid": 1000, "gid": 1000, "supplementalGroups": [1000, 20, 44, 2000]}}
              },
              {
                "name": "grpc-sidecar",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}},
                "lastState": {},
                "ready": false,
                "restartCount": 3,
                "image": "registry.local/grpc-health:1",
                "imageID": ""
              }
            ],
            "qosClass": "Burstable"
          }
        }"#,
        )
        .unwrap()
    }

    #[test]
    fn kubectl_pod_round_trips_with_the_same_json() {
        let input = kubectl_pod();
        let pod: Pod = decode_strict(&input);
        assert_eq!(serde_json::to_value(&pod).unwrap(), without_nulls(input));
    }

    #[test]
    fn kubectl_pod_decodes_into_the_expected_fields() {
        let pod: Pod = decode_strict(&kubectl_pod());
        let gateway = &pod.spec.containers[0];
        assert_eq!(
            gateway
                .liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .port,
            IntOrString::Int(8080)
        );
        assert_eq!(
            gateway
                .readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .port,
            IntOrString::String("http".to_owned())
        );
        assert_eq!(
            gateway.resources.limits["memory"],
            Quantity("128Mi".to_owned())
        );
        assert_eq!(
            gateway.env[2]
                .value_from
                .as_ref()
                .unwrap()
                .resource_field_ref
                .as_ref()
                .unwrap()
                .divisor,
            Some(Quantity("1Mi".to_owned()))
        );
        assert!(pod.spec.host_network && pod.spec.host_pid && pod.spec.host_ipc);
        assert_eq!(pod.spec.tolerations[1].toleration_seconds, Some(300));
        assert_eq!(pod.status.pod_ips[1].ip, "fd00::43");
        let last = &pod.status.container_statuses[0].last_state;
        assert_eq!(last.terminated.as_ref().unwrap().exit_code, 137);
        assert!(pod.status.container_statuses[1].started.is_none());
    }

    #[test]
    fn minimal_manifest_re_encodes_without_invented_fields() {
        let input = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hello"},
            "spec": {"containers": [{"name": "hello", "image": "busybox", "resources": {}}]},
            "status": {}
        });
        let pod: Pod = decode_strict(&input);
        assert_eq!(serde_json::to_value(&pod).unwrap(), input);
    }

    #[test]
    fn empty_optional_structs_keep_their_presence() {
        // `emptyDir: {}` selects the source; `securityContext: {}` is what
        // Kubernetes defaulting writes. Both must survive a round trip.
        let input = json!({
            "containers": [{"name": "c", "resources": {}, "securityContext": {}}],
            "securityContext": {},
            "volumes": [{"name": "v", "emptyDir": {}}]
        });
        let spec: PodSpec = decode_strict(&input);
        assert_eq!(
            spec.volumes[0].sources(),
            vec![VolumeSourceRef::EmptyDir(&EmptyDirVolumeSource::default())]
        );
        assert_eq!(serde_json::to_value(&spec).unwrap(), input);
    }

    #[test]
    fn false_zero_and_empty_values_are_omitted() {
        let encoded = serde_json::to_value(Pod::default()).unwrap();
        assert_eq!(encoded, json!({"metadata": {}, "spec": {}, "status": {}}));

        let encoded = serde_json::to_value(Container::default()).unwrap();
        assert_eq!(encoded, json!({"name": "", "resources": {}}));

        let encoded = serde_json::to_value(Probe::default()).unwrap();
        assert_eq!(encoded, json!({}));
    }

    #[test]
    fn always_written_fields_are_written_even_when_zero() {
        let encoded = serde_json::to_value(ContainerStatus::default()).unwrap();
        assert_eq!(
            encoded,
            json!({"name": "", "state": {}, "lastState": {}, "ready": false,
                   "restartCount": 0, "image": "", "imageID": ""})
        );
        let encoded = serde_json::to_value(ContainerStateTerminated::default()).unwrap();
        assert_eq!(encoded, json!({"exitCode": 0}));
        let encoded = serde_json::to_value(ContainerPort::default()).unwrap();
        assert_eq!(encoded, json!({"containerPort": 0}));
    }

    #[test]
    fn int_or_string_ports_decode_from_numbers_and_names() {
        for (port, expected) in [
            (json!(8080), IntOrString::Int(8080)),
            (json!("http"), IntOrString::String("http".to_owned())),
            (json!("8080"), IntOrString::String("8080".to_owned())),
        ] {
            let input = json!({"port": port});
            let action: TcpSocketAction = decode_strict(&input);
            assert_eq!(action.port, expected, "{input}");
            assert_eq!(serde_json::to_value(&action).unwrap(), input);
        }
    }

    #[test]
    fn unsupported_volume_sources_are_reported_as_unknown_fields() {
        let input = json!({"name": "shared", "nfs": {"server": "nas", "path": "/export"}});
        let mut unknown = Vec::new();
        let _: Volume =
            serde_ignored::deserialize(input, |path| unknown.push(path.to_string())).unwrap();
        assert_eq!(unknown, vec!["nfs".to_owned()]);
    }

    #[test]
    fn volume_sources_lists_every_source_that_is_set() {
        let volume = Volume {
            name: "v".to_owned(),
            host_path: Some(HostPathVolumeSource {
                path: "/data".to_owned(),
                type_: None,
            }),
            config_map: Some(ConfigMapVolumeSource::default()),
            ..Volume::default()
        };
        assert_eq!(
            volume.sources(),
            vec![
                VolumeSourceRef::HostPath(volume.host_path.as_ref().unwrap()),
                VolumeSourceRef::ConfigMap(volume.config_map.as_ref().unwrap()),
            ]
        );
        assert!(Volume::default().sources().is_empty());
    }

    #[test]
    fn probe_and_hook_handlers_list_the_actions_that_are_set() {
        let probe = Probe {
            grpc: Some(GrpcAction {
                port: 9090,
                service: None,
            }),
            ..Probe::default()
        };
        assert_eq!(
            probe.handlers(),
            vec![HandlerRef::Grpc(probe.grpc.as_ref().unwrap())]
        );
        let hook = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 3 }),
            ..LifecycleHandler::default()
        };
        assert_eq!(
            hook.handlers(),
            vec![HandlerRef::Sleep(hook.sleep.as_ref().unwrap())]
        );
        assert!(Probe::default().handlers().is_empty());
    }

    #[test]
    fn only_succeeded_and_failed_pods_are_terminal() {
        for (phase, terminal) in [
            ("", false),
            (pod_phase::PENDING, false),
            (pod_phase::RUNNING, false),
            (pod_phase::UNKNOWN, false),
            (pod_phase::SUCCEEDED, true),
            (pod_phase::FAILED, true),
        ] {
            let mut pod = Pod::default();
            pod.status.phase = phase.to_owned();
            assert_eq!(pod.is_terminal(), terminal, "phase {phase:?}");
        }
    }

    #[test]
    fn pod_is_ready_only_when_the_ready_condition_is_true() {
        let pod: Pod = decode_strict(&kubectl_pod());
        assert!(pod.is_ready());
        assert!(pod.is_bound());
        for status in [condition_status::FALSE, condition_status::UNKNOWN] {
            let mut pod = pod.clone();
            pod.status
                .conditions
                .iter_mut()
                .filter(|c| c.type_ == pod_condition::READY)
                .for_each(|c| c.status = status.to_owned());
            assert!(!pod.is_ready(), "status {status}");
        }
        assert!(!Pod::default().is_ready());
    }

    #[test]
    fn container_lookups_cover_init_and_regular_containers() {
        let pod: Pod = decode_strict(&kubectl_pod());
        let names: Vec<_> = pod.spec.all_containers().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["migrate", "log-shipper", "gateway", "grpc-sidecar"]);
        let sidecars: Vec<_> = pod
            .spec
            .all_containers()
            .filter(|c| c.is_sidecar())
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(sidecars, ["log-shipper"]);
        assert_eq!(
            pod.status
                .container_status("migrate")
                .unwrap()
                .restart_count,
            0
        );
        assert_eq!(
            pod.status
                .container_status("grpc-sidecar")
                .unwrap()
                .restart_count,
            3
        );
        assert!(pod.status.container_status("absent").is_none());
    }

    #[test]
    fn tolerations_match_taints_like_kubernetes() {
        fn taint(key: &str, value: &str, effect: &str) -> Taint {
            Taint {
                key: key.to_owned(),
                value: value.to_owned(),
                effect: effect.to_owned(),
                time_added: None,
            }
        }
        fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
            Toleration {
                key: key.to_owned(),
                operator: operator.to_owned(),
                value: value.to_owned(),
                effect: effect.to_owned(),
                toleration_seconds: None,
            }
        }
        let battery = taint("battery", "low", "NoSchedule");
        for (name, tol, taint, tolerates) in [
            (
                "equal key, value and effect",
                toleration("battery", "Equal", "low", "NoSchedule"),
                &battery,
                true,
            ),
            (
                "empty operator means Equal",
                toleration("battery", "", "low", "NoSchedule"),
                &battery,
                true,
            ),
            (
                "different value",
                toleration("battery", "Equal", "high", "NoSchedule"),
                &battery,
                false,
            ),
            (
                "different key",
                toleration("heat", "Equal", "low", "NoSchedule"),
                &battery,
                false,
            ),
            (
                "different effect",
                toleration("battery", "Equal", "low", "NoExecute"),
                &battery,
                false,
            ),
            (
                "empty effect matches any effect",
                toleration("battery", "Equal", "low", ""),
                &battery,
                true,
            ),
            (
                "exists ignores the value",
                toleration("battery", "Exists", "", "NoSchedule"),
                &battery,
                true,
            ),
            (
                "exists with empty key tolerates everything",
                toleration("", "Exists", "", ""),
                &battery,
                true,
            ),
            (
                "exists with empty key still checks the effect",
                toleration("", "Exists", "", "NoExecute"),
                &battery,
                false,
            ),
            (
                "equal with empty value needs an empty taint value",
                toleration("battery", "Equal", "", ""),
                &battery,
                false,
            ),
            (
                "unknown operator tolerates nothing",
                toleration("battery", "Gt", "low", "NoSchedule"),
                &battery,
                false,
            ),
        ] {
            assert_eq!(tol.tolerates(taint), tolerates, "{name}");
        }
    }

    #[test]
    fn file_modes_accept_numbers_and_leading_zero_octal_text() {
        for (mode, expected) in [
            (json!(420), Some(420)),
            (json!("0644"), Some(0o644)),
            (json!("0400"), Some(0o400)),
            (json!("00"), Some(0)),
            (json!(null), None),
        ] {
            let input = json!({"key": "k", "path": "p", "mode": mode});
            let item: KeyToPath = decode_strict(&input);
            assert_eq!(item.mode, expected, "{input}");
        }
        for bad in [
            json!("644"),
            json!("0"),
            json!("0o644"),
            json!("0999"),
            json!("rw"),
            json!(-1_i64 << 40),
        ] {
            let input = json!({"key": "k", "path": "p", "mode": bad});
            let err = serde_json::from_value::<KeyToPath>(input.clone()).unwrap_err();
            assert!(err.to_string().contains("a file mode"), "{input}: {err}");
        }
        let item: KeyToPath =
            serde_json::from_value(json!({"key": "k", "path": "p", "mode": "0644"})).unwrap();
        assert_eq!(
            serde_json::to_value(&item).unwrap(),
            json!({"key": "k", "path": "p", "mode": 420})
        );
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn kubectl_yaml_with_numeric_quantities_and_octal_modes_decodes() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: blink
spec:
  containers:
  - name: blink
    image: registry.local/blink:1
    resources:
      limits:
        cpu: 1
        memory: 32Mi
    securityContext:
      privileged: true
  volumes:
  - name: gpio
    hostPath:
      path: /dev/gpiomem
      type: CharDevice
  - name: conf
    configMap:
      name: blink
      defaultMode: 0644
  tolerations:
  - operator: Exists
"#;
        let pod: Pod = serde_norway::from_str(yaml).unwrap();
        assert_eq!(
            pod.spec.containers[0].resources.limits["cpu"],
            Quantity("1".to_owned())
        );
        assert_eq!(
            pod.spec.volumes[1]
                .config_map
                .as_ref()
                .unwrap()
                .default_mode,
            Some(0o644)
        );
        assert_eq!(
            pod.spec.volumes[0]
                .host_path
                .as_ref()
                .unwrap()
                .type_
                .as_deref(),
            Some("CharDevice")
        );
        assert!(pod.spec.tolerations[0].tolerates(&Taint::default()));
    }
}
