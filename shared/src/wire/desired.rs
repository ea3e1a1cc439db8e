//! The desired state of one device: everything its agent needs to run its pods
//! without asking the hub anything else.
//!
//! The hub resolves before sending: defaults are applied, named ports are
//! numbers, environment variables and ConfigMap/Secret volumes carry their
//! values, pod-level security settings are merged into each container, and
//! quantities are integers. The agent only checks what only it can check
//! (the image's user against `run_as_non_root`, host paths, capabilities the
//! kernel knows).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// All a device should run, as computed by the hub at one store revision.
/// Published retained on the device's `desired` topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// The node this state is for; the agent refuses a state for another node.
    pub node: String,
    /// The hub store revision this state was computed at. A device never
    /// applies a revision older than the one it holds (see
    /// [`super::revision`]).
    pub revision: u64,
    pub pods: Vec<Pod>,
    /// The Services whose cluster IPs the device's pods may reach.
    pub services: Vec<Service>,
}

/// One pod bound to the device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// The pod's labels, for log and metrics attribution on the device.
    pub labels: BTreeMap<String, String>,
    /// Run to completion one at a time, in order, before `containers` start.
    pub init_containers: Vec<Container>,
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    pub restart_policy: RestartPolicy,
    /// Seconds between SIGTERM and SIGKILL when the pod is stopped.
    pub termination_grace_period_seconds: u32,
    /// `Some` once the pod is being deleted: stop it within this many seconds
    /// (overriding `termination_grace_period_seconds`) and report its final
    /// status; the hub removes it after that.
    pub deletion_grace_period_seconds: Option<u32>,
    pub host_network: bool,
    pub security: PodSecurity,
}

/// `Always`, `OnFailure` or `Never` (`spec.restartPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// Pod-wide security settings that are not per container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSecurity {
    /// Group that owns the pod's volumes and is added to every container.
    pub fs_group: Option<u32>,
    pub supplemental_groups: Vec<u32>,
}

/// One container, with everything resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    /// A full reference, e.g. `registry.local:5000/nginx:1.25` or with `@sha256:`.
    pub image: String,
    pub pull_policy: PullPolicy,
    /// Replaces the image's entrypoint when not empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when not empty.
    pub args: Vec<String>,
    /// The image's working directory when empty.
    pub working_dir: String,
    /// In order; later entries win, as in Kubernetes. `$(VAR)` references are
    /// already expanded.
    pub env: Vec<EnvVar>,
    pub ports: Vec<ContainerPort>,
    pub resources: Resources,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    pub startup: Option<Probe>,
    pub volume_mounts: Vec<VolumeMount>,
    pub security: SecurityContext,
    /// An init container with `restartPolicy: Always`: started in order with
    /// the other init containers, it does not have to finish; it keeps running
    /// (restarted whatever the pod's policy) beside the containers and is
    /// stopped after them.
    pub sidecar: bool,
}

/// `Always`, `IfNotPresent` or `Never` (`imagePullPolicy`, defaulted by the hub).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

/// One environment variable, its value resolved (from a literal, a ConfigMap,
/// a Secret or the downward API).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for EnvVar {
    // The value may come from a Secret: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvVar")
            .field("name", &self.name)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .finish()
    }
}

/// A port the container listens on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPort {
    /// Empty when the port has no name.
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
    /// Forwarded from the device's own address when set.
    pub host_port: Option<u16>,
}

/// A transport protocol (`TCP`, `UDP`, `SCTP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

/// Requests (used by the hub's scheduler, and for CPU weight on the device)
/// and limits (enforced through cgroups).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

/// Resource amounts as integers; `None` means not set (no limit).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceList {
    /// Thousandths of a CPU (`500m` is 500, `2` is 2000).
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Processes and threads (`pids.max`).
    pub pids: Option<u32>,
}

/// A liveness, readiness or startup probe with its timings (defaults applied).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// What a probe does; success is exit status 0, HTTP 200–399, or a connect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeAction {
    Exec {
        command: Vec<String>,
    },
    HttpGet {
        scheme: HttpScheme,
        /// The pod's IP when empty.
        host: String,
        port: u16,
        path: String,
        headers: Vec<HttpHeader>,
    },
    TcpSocket {
        /// The pod's IP when empty.
        host: String,
        port: u16,
    },
}

impl Default for ProbeAction {
    fn default() -> Self {
        ProbeAction::TcpSocket {
            host: String::new(),
            port: 0,
        }
    }
}

/// `HTTP` or `HTTPS` (certificates are not verified, as in Kubernetes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HttpScheme {
    #[default]
    Http,
    Https,
}

/// One header sent with an HTTP probe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// Where a volume appears inside a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The [`Volume::name`] of one of the pod's volumes.
    pub volume: String,
    pub mount_path: String,
    /// A path inside the volume to mount instead of its root; empty for the root.
    pub sub_path: String,
    pub read_only: bool,
}

/// A named volume of the pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

/// Where a volume's contents come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeSource {
    /// A fresh directory that lives as long as the pod.
    EmptyDir {
        medium: StorageMedium,
        size_limit_bytes: Option<u64>,
    },
    /// A path on the device.
    HostPath { path: String, kind: HostPathKind },
    /// A ConfigMap's selected keys, resolved to files.
    ConfigMap(FileSet),
    /// A Secret's selected keys, resolved to files; the agent keeps them on
    /// tmpfs only, never on disk.
    Secret(FileSet),
}

/// `""` (the device's disk) or `Memory` (tmpfs) for an emptyDir.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StorageMedium {
    #[default]
    Default,
    Memory,
}

/// A hostPath volume's `type`: what must exist (or be created) at the path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HostPathKind {
    /// `""`: no check.
    #[default]
    Unchecked,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

/// The files of a ConfigMap or Secret volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSet {
    /// Mode bits for files without their own (Kubernetes' default is 0o644).
    pub default_mode: u32,
    pub files: Vec<ProjectedFile>,
}

/// One file of a ConfigMap or Secret volume.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectedFile {
    /// Relative to the volume's root (the key, or the `items[].path` for it).
    pub path: String,
    /// Overrides [`FileSet::default_mode`].
    pub mode: Option<u32>,
    pub data: Vec<u8>,
}

impl fmt::Debug for ProjectedFile {
    // Secret contents must not end up in logs through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectedFile")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .finish()
    }
}

/// A container's security settings, with the pod's defaults merged in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityContext {
    /// The image's user when `None`.
    pub run_as_user: Option<u32>,
    /// The image's group when `None`.
    pub run_as_group: Option<u32>,
    /// Refuse to start if the process would run as uid 0.
    pub run_as_non_root: bool,
    pub capabilities: Capabilities,
    pub privileged: bool,
    pub read_only_root_filesystem: bool,
    /// Resolved by the hub (Kubernetes' unset means true unless
    /// `privileged` or `CAP_SYS_ADMIN` say otherwise).
    pub allow_privilege_escalation: bool,
    pub seccomp: Seccomp,
}

/// Capability names as in Kubernetes (`NET_ADMIN`, without `CAP_`), applied
/// to the runtime's default set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

/// The seccomp profile (`securityContext.seccompProfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    #[default]
    Unconfined,
    RuntimeDefault,
    /// A profile file under the agent's seccomp directory.
    Localhost {
        profile: String,
    },
}

/// A Service the device's pods may reach through its cluster IP, with the
/// ready backends behind each port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// `None` for a headless Service.
    pub cluster_ip: Option<IpAddr>,
    pub ports: Vec<ServicePort>,
}

/// One port of a Service and where its traffic goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// Ready endpoints only; the target port is resolved per backend, since a
    /// named target port may be a different number on each pod.
    pub backends: Vec<Backend>,
}

/// One endpoint behind a Service port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub address: IpAddr,
    pub port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_env_values_and_file_contents() {
        let env = EnvVar {
            name: "DB_PASSWORD".into(),
            value: "hunter2".into(),
        };
        let file = ProjectedFile {
            path: "tls.key".into(),
            mode: Some(0o600),
            data: b"-----BEGIN PRIVATE KEY-----".to_vec(),
        };
        let shown = format!("{env:?} {file:?}");
        assert!(shown.contains("DB_PASSWORD") && shown.contains("tls.key"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(shown.contains("<7 bytes>") && shown.contains("<27 bytes>"));
    }
}
