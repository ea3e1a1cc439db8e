//! From the store's objects to the desired state of one device.
//!
//! [`state`] gathers the pods bound to a node into the
//! [`wire::DesiredState`] the gateway publishes; [`pod`] turns one pod into
//! its [`wire::Pod`] with everything a kubelet would look up resolved here:
//! environment variables from ConfigMaps, Secrets and the downward API,
//! `$(VAR)` references, ConfigMap/Secret/downwardAPI/projected volumes as
//! files, named probe ports, quantities as integers, the pod's security
//! settings merged into each container. A device never asks the hub for an
//! object.
//!
//! What cannot be resolved (a ConfigMap that does not exist, a key it does
//! not have, a volume kind a device cannot provide) is an [`Unresolved`] with
//! kubelet's reason and message, for the pod's status. A pod that was
//! resolved before keeps its last resolved form (see [`state`]): deleting a
//! ConfigMap does not stop a pod already running with it, as on a kubelet.

mod volumes;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use flotilla_shared::model::{
    self, ConfigMap, IntOrString, Node, ObjectFieldSelector, PodSecurityContext,
    ResourceFieldSelector, Secret, image_pull_policy, restart_policy,
};
use flotilla_shared::quantity::{Amount, Quantity};
use flotilla_shared::wire;

use super::expand::expand;

/// Kubelet's reason for a container whose configuration cannot be built.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
/// Kubelet's event reason for a volume that cannot be set up.
pub const FAILED_MOUNT: &str = "FailedMount";

/// Kubelet's default grace period when a pod names none.
const DEFAULT_GRACE_SECONDS: u32 = 30;
/// File mode of ConfigMap, Secret and downwardAPI files without their own.
const DEFAULT_FILE_MODE: u32 = 0o644;

/// The ConfigMaps and Secrets pods may refer to, by namespace and name.
pub trait Referenced {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap>;
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret>;
}

/// Why a pod could not be put into a device's desired state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unresolved {
    /// [`CREATE_CONTAINER_CONFIG_ERROR`] or [`FAILED_MOUNT`].
    pub reason: &'static str,
    /// As kubelet words it, e.g. `configmap "app" not found`.
    pub message: String,
}

impl Unresolved {
    fn config(message: impl Into<String>) -> Self {
        Unresolved {
            reason: CREATE_CONTAINER_CONFIG_ERROR,
            message: message.into(),
        }
    }

    fn mount(volume: &str, message: impl std::fmt::Display) -> Self {
        Unresolved {
            reason: FAILED_MOUNT,
            message: format!("MountVolume.SetUp failed for volume {volume:?} : {message}"),
        }
    }
}

/// The desired state of `node` at store `revision`: every pod bound to it,
/// in (namespace, name) order, and the pods that could not be resolved with
/// why. A pod that cannot be resolved now but is in `previous` (the state
/// last published) keeps its form from there.
pub fn state<'a>(
    node: &Node,
    revision: u64,
    pods: impl IntoIterator<Item = &'a model::Pod>,
    referenced: &impl Referenced,
    previous: Option<&wire::DesiredState>,
) -> (wire::DesiredState, Vec<(&'a model::Pod, Unresolved)>) {
    let name = &node.metadata.name;
    let mut bound: Vec<&model::Pod> = pods
        .into_iter()
        .filter(|p| &p.spec.node_name == name)
        .collect();
    bound.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let mut desired = wire::DesiredState {
        node: name.clone(),
        revision,
        pods: Vec::with_capacity(bound.len()),
        services: Vec::new(),
    };
    let mut unresolved = Vec::new();
    for p in bound {
        match pod(p, referenced, Some(node)) {
            Ok(resolved) => desired.pods.push(resolved),
            Err(why) => {
                let before = previous
                    .into_iter()
                    .flat_map(|s| &s.pods)
                    .find(|q| q.uid == p.metadata.uid);
                if let Some(before) = before {
                    let mut kept = before.clone();
                    // Deletion still reaches the device.
                    kept.deletion_grace_period_seconds = deletion_grace(p);
                    desired.pods.push(kept);
                }
                unresolved.push((p, why));
            }
        }
    }
    (desired, unresolved)
}

/// One pod as its device runs it. `node` (the Node it is bound to) answers
/// `status.hostIP` and the limits a container does not set.
pub fn pod(
    pod: &model::Pod,
    referenced: &impl Referenced,
    node: Option<&Node>,
) -> Result<wire::Pod, Unresolved> {
    let context = Context {
        pod,
        referenced,
        node,
    };
    let spec = &pod.spec;
    let init_containers = spec
        .init_containers
        .iter()
        .map(|c| context.container(c))
        .collect::<Result<_, _>>()?;
    let containers = spec
        .containers
        .iter()
        .map(|c| context.container(c))
        .collect::<Result<_, _>>()?;
    let volumes = spec
        .volumes
        .iter()
        .map(|v| volumes::volume(&context, v))
        .collect::<Result<_, _>>()?;
    let security = spec.security_context.clone().unwrap_or_default();
    Ok(wire::Pod {
        uid: pod.metadata.uid.clone(),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        labels: pod.metadata.labels.clone(),
        init_containers,
        containers,
        volumes,
        restart_policy: match spec.restart_policy.as_str() {
            restart_policy::ON_FAILURE => wire::RestartPolicy::OnFailure,
            restart_policy::NEVER => wire::RestartPolicy::Never,
            _ => wire::RestartPolicy::Always,
        },
        termination_grace_period_seconds: spec
            .termination_grace_period_seconds
            .map_or(DEFAULT_GRACE_SECONDS, seconds),
        deletion_grace_period_seconds: deletion_grace(pod),
        host_network: spec.host_network,
        security: wire::PodSecurity {
            fs_group: security.fs_group.map(id).transpose()?,
            supplemental_groups: security
                .supplemental_groups
                .iter()
                .map(|g| id(*g))
                .collect::<Result<_, _>>()?,
        },
    })
}

fn deletion_grace(pod: &model::Pod) -> Option<u32> {
    pod.metadata.deletion_timestamp.as_ref()?;
    Some(
        pod.metadata
            .deletion_grace_period_seconds
            .map_or(0, seconds),
    )
}

/// A non-negative count of seconds, capped at `u32::MAX`.
fn seconds(s: i64) -> u32 {
    u32::try_from(s.max(0)).unwrap_or(u32::MAX)
}

/// A user or group id (validation keeps them in range; checked again here).
fn id(value: i64) -> Result<u32, Unresolved> {
    u32::try_from(value)
        .map_err(|_| Unresolved::config(format!("user or group id {value} is out of range")))
}

/// A ConfigMap or a Secret.
#[derive(Clone, Copy, Debug)]
enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    /// As kubelet's messages spell it in `"... not found"`.
    fn label(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }

    /// As kubelet's messages spell it in `couldn't find key ...`.
    fn title(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
}

/// What resolving one pod looks things up in.
struct Context<'p, R> {
    pod: &'p model::Pod,
    referenced: &'p R,
    node: Option<&'p Node>,
}

impl<R: Referenced> Context<'_, R> {
    /// The keys and bytes of ConfigMap (`data` and `binaryData`) or Secret
    /// `name` in the pod's namespace; `None` when it does not exist.
    fn object_data(&self, kind: Kind, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let namespace = &self.pod.metadata.namespace;
        match kind {
            Kind::ConfigMap => self
                .referenced
                .config_map(namespace, name)
                .map(config_map_bytes),
            Kind::Secret => self.referenced.secret(namespace, name).map(secret_data),
        }
    }

    fn container(&self, c: &model::Container) -> Result<wire::Container, Unresolved> {
        let env = self.env(c)?;
        let lookup = |name: &str| {
            env.iter()
                .rev()
                .find(|v| v.name == name)
                .map(|v| v.value.as_str())
        };
        let expand_all =
            |items: &[String]| -> Vec<String> { items.iter().map(|s| expand(s, lookup)).collect() };
        let ports = c
            .ports
            .iter()
            .map(|p| {
                Ok(wire::ContainerPort {
                    name: p.name.clone(),
                    port: port(p.container_port)?,
                    protocol: protocol(&p.protocol),
                    host_port: (p.host_port > 0).then(|| port(p.host_port)).transpose()?,
                })
            })
            .collect::<Result<_, Unresolved>>()?;
        let probe = |p: &Option<model::Probe>, which: &str| {
            p.as_ref().map(|p| probe(c, p, which)).transpose()
        };
        Ok(wire::Container {
            name: c.name.clone(),
            image: c.image.clone(),
            pull_policy: match c.image_pull_policy.as_str() {
                image_pull_policy::ALWAYS => wire::PullPolicy::Always,
                image_pull_policy::NEVER => wire::PullPolicy::Never,
                _ => wire::PullPolicy::IfNotPresent,
            },
            command: expand_all(&c.command),
            args: expand_all(&c.args),
            working_dir: c.working_dir.clone(),
            ports,
            resources: wire::Resources {
                requests: resource_list(&c.resources.requests),
                limits: resource_list(&c.resources.limits),
            },
            liveness: probe(&c.liveness_probe, "liveness")?,
            readiness: probe(&c.readiness_probe, "readiness")?,
            startup: probe(&c.startup_probe, "startup")?,
            volume_mounts: c
                .volume_mounts
                .iter()
                .map(|m| wire::VolumeMount {
                    volume: m.name.clone(),
                    mount_path: m.mount_path.clone(),
                    sub_path: m.sub_path.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            security: security(c, self.pod.spec.security_context.as_ref())?,
            sidecar: c.is_sidecar(),
            env,
        })
    }

    /// The container's environment as kubelet builds it: `envFrom` sources
    /// first (keys that are not valid variable names skipped, as kubelet
    /// does), then `env` in order with `$(VAR)` expanded against what is
    /// defined so far; a later definition of a name replaces the earlier.
    fn env(&self, c: &model::Container) -> Result<Vec<wire::EnvVar>, Unresolved> {
        let mut env: Vec<wire::EnvVar> = Vec::new();
        let set = |env: &mut Vec<wire::EnvVar>, name: String, value: String| match env
            .iter_mut()
            .find(|v| v.name == name)
        {
            Some(existing) => existing.value = value,
            None => env.push(wire::EnvVar { name, value }),
        };
        let namespace = &self.pod.metadata.namespace;
        for source in &c.env_from {
            let entries: Vec<(String, String)> = if let Some(r) = &source.config_map_ref {
                match self.referenced.config_map(namespace, &r.name) {
                    Some(cm) => cm
                        .data
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    None if r.optional == Some(true) => Vec::new(),
                    None => {
                        return Err(Unresolved::config(format!(
                            "configmap {:?} not found",
                            r.name
                        )));
                    }
                }
            } else if let Some(r) = &source.secret_ref {
                match self.referenced.secret(namespace, &r.name) {
                    Some(secret) => secret_data(secret)
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                        .collect(),
                    None if r.optional == Some(true) => Vec::new(),
                    None => {
                        return Err(Unresolved::config(format!("secret {:?} not found", r.name)));
                    }
                }
            } else {
                Vec::new()
            };
            for (key, value) in entries {
                let name = format!("{}{key}", source.prefix);
                if flotilla_shared::validation::names::env_var_name(&name).is_empty() {
                    set(&mut env, name, value);
                }
            }
        }
        for var in &c.env {
            let value = match &var.value_from {
                None => {
                    let lookup = |name: &str| {
                        env.iter()
                            .rev()
                            .find(|v| v.name == name)
                            .map(|v| v.value.as_str())
                    };
                    expand(&var.value, lookup)
                }
                Some(from) => match self.env_source(c, from)? {
                    Some(value) => value,
                    // An optional key or object that is missing: no variable.
                    None => continue,
                },
            };
            set(&mut env, var.name.clone(), value);
        }
        Ok(env)
    }

    fn env_source(
        &self,
        c: &model::Container,
        from: &model::EnvVarSource,
    ) -> Result<Option<String>, Unresolved> {
        let namespace = &self.pod.metadata.namespace;
        if let Some(field) = &from.field_ref {
            return self.field(field).map(Some).map_err(Unresolved::config);
        }
        if let Some(resource) = &from.resource_field_ref {
            return self
                .resource(c, resource)
                .map(Some)
                .map_err(Unresolved::config);
        }
        let (kind, name, key, optional) = if let Some(r) = &from.config_map_key_ref {
            (Kind::ConfigMap, &r.name, &r.key, r.optional)
        } else if let Some(r) = &from.secret_key_ref {
            (Kind::Secret, &r.name, &r.key, r.optional)
        } else {
            return Ok(Some(String::new()));
        };
        let optional = optional == Some(true);
        match self.object_data(kind, name) {
            None if optional => Ok(None),
            None => Err(Unresolved::config(format!(
                "{} {name:?} not found",
                kind.label()
            ))),
            Some(mut data) => match data.remove(key) {
                Some(value) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
                None if optional => Ok(None),
                None => Err(Unresolved::config(format!(
                    "couldn't find key {key} in {} {namespace}/{name}",
                    kind.title()
                ))),
            },
        }
    }

    /// A downward API field (`fieldRef.fieldPath`), as kubelet answers it.
    fn field(&self, selector: &ObjectFieldSelector) -> Result<String, String> {
        let meta = &self.pod.metadata;
        let path = selector.field_path.as_str();
        let quoted = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix("['"))
                .and_then(|rest| rest.strip_suffix("']"))
        };
        if let Some(key) = quoted("metadata.labels") {
            return Ok(meta.labels.get(key).cloned().unwrap_or_default());
        }
        if let Some(key) = quoted("metadata.annotations") {
            return Ok(meta.annotations.get(key).cloned().unwrap_or_default());
        }
        Ok(match path {
            "metadata.name" => meta.name.clone(),
            "metadata.namespace" => meta.namespace.clone(),
            "metadata.uid" => meta.uid.clone(),
            "metadata.labels" => format_map(&meta.labels),
            "metadata.annotations" => format_map(&meta.annotations),
            "spec.nodeName" => self.pod.spec.node_name.clone(),
            "spec.serviceAccountName" => self.pod.spec.service_account_name.clone(),
            "status.hostIP" | "status.hostIPs" => self.host_ips(path == "status.hostIPs")?,
            "status.podIP" | "status.podIPs" if self.pod.spec.host_network => {
                self.host_ips(path == "status.podIPs")?
            }
            "status.podIP" | "status.podIPs" => {
                return Err(format!(
                    "{path} is not available on devices yet for pods without hostNetwork"
                ));
            }
            other => return Err(format!("unsupported fieldPath: {other}")),
        })
    }

    /// The node's internal addresses (its external ones when it has none).
    fn host_ips(&self, all: bool) -> Result<String, String> {
        let addresses = self.node.map(|n| &n.status.addresses);
        let of = |kind: &str| -> Vec<&str> {
            addresses
                .into_iter()
                .flatten()
                .filter(|a| a.type_ == kind)
                .map(|a| a.address.as_str())
                .collect()
        };
        let mut ips = of("InternalIP");
        if ips.is_empty() {
            ips = of("ExternalIP");
        }
        if ips.is_empty() {
            return Err("the node has not reported an address yet".into());
        }
        Ok(if all {
            ips.join(",")
        } else {
            ips[0].to_owned()
        })
    }

    /// A container's resource (`resourceFieldRef`) in units of its divisor,
    /// rounded up, as kubelet answers it; a limit the container does not set
    /// is the node's allocatable amount.
    fn resource(
        &self,
        c: &model::Container,
        selector: &ResourceFieldSelector,
    ) -> Result<String, String> {
        let container = if selector.container_name.is_empty() {
            c
        } else {
            self.pod
                .spec
                .all_containers()
                .find(|other| other.name == selector.container_name)
                .ok_or_else(|| format!("container {:?} not found", selector.container_name))?
        };
        let (list, name) = match selector.resource.split_once('.') {
            Some(("limits", name)) => (&container.resources.limits, name),
            Some(("requests", name)) => (&container.resources.requests, name),
            _ => return Err(format!("unsupported resource {:?}", selector.resource)),
        };
        let amount = match list.get(name) {
            Some(q) => parse(q)?,
            None if selector.resource.starts_with("limits.") => self
                .node
                .and_then(|n| n.status.allocatable.get(name))
                .map(parse)
                .transpose()?
                .unwrap_or(Amount::zero()),
            None => Amount::zero(),
        };
        let divisor = match &selector.divisor {
            Some(d) if !parse(d)?.is_zero() => parse(d)?,
            _ => Amount::from_units(1),
        };
        if divisor.is_negative() {
            return Err(format!(
                "divisor {} is negative",
                selector
                    .divisor
                    .as_ref()
                    .map(|d| d.0.as_str())
                    .unwrap_or_default()
            ));
        }
        let (n, d) = (amount.nanos().max(0), divisor.nanos());
        Ok(((n + d - 1) / d).to_string())
    }
}

fn parse(q: &Quantity) -> Result<Amount, String> {
    q.parse().map_err(|e| e.to_string())
}

/// Labels or annotations as a downwardAPI file shows them: `key="value"`
/// lines in key order, values quoted as Go's `%q` does.
fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A ConfigMap's keys and bytes, from `data` and `binaryData`.
fn config_map_bytes(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let text = cm
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()));
    let binary = cm.binary_data.iter().map(|(k, v)| (k.clone(), v.0.clone()));
    binary.chain(text).collect()
}

/// A Secret's keys and bytes (`stringData` over `data`, as the API server
/// merges them on write).
fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in &secret.string_data {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

fn port(number: i32) -> Result<u16, Unresolved> {
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Unresolved::config(format!("port {number} is out of range 1-65535")))
}

fn protocol(name: &str) -> wire::Protocol {
    match name {
        "UDP" => wire::Protocol::Udp,
        "SCTP" => wire::Protocol::Sctp,
        _ => wire::Protocol::Tcp,
    }
}

/// cpu in thousandths (rounded up), memory in bytes (rounded up); other
/// resources are the scheduler's business only.
fn resource_list(list: &model::ResourceList) -> wire::ResourceList {
    let amount = |name: &str| list.get(name).and_then(|q| q.parse().ok());
    let non_negative = |n: i128| u64::try_from(n.max(0)).unwrap_or(u64::MAX);
    wire::ResourceList {
        cpu_millis: amount("cpu").map(|a: Amount| non_negative(a.millis_ceil())),
        memory_bytes: amount("memory").map(|a: Amount| non_negative(i128::from(a.units_ceil()))),
        pids: None,
    }
}

/// A probe with kubelet's defaults, its named port resolved against the
/// container's ports.
fn probe(c: &model::Container, p: &model::Probe, which: &str) -> Result<wire::Probe, Unresolved> {
    let named = |target: &IntOrString| -> Result<u16, Unresolved> {
        match target {
            IntOrString::Int(n) => port(*n),
            IntOrString::String(name) => match name.parse::<i32>() {
                Ok(n) => port(n),
                Err(_) => c
                    .ports
                    .iter()
                    .find(|p| &p.name == name)
                    .map(|p| port(p.container_port))
                    .unwrap_or_else(|| {
                        Err(Unresolved::config(format!(
                            "{which} probe of container {:?}: no port named {name:?}",
                            c.name
                        )))
                    }),
            },
        }
    };
    let action = if let Some(exec) = &p.exec {
        wire::ProbeAction::Exec {
            command: exec.command.clone(),
        }
    } else if let Some(http) = &p.http_get {
        wire::ProbeAction::HttpGet {
            scheme: if http.scheme.eq_ignore_ascii_case("HTTPS") {
                wire::HttpScheme::Https
            } else {
                wire::HttpScheme::Http
            },
            host: http.host.clone(),
            port: named(&http.port)?,
            path: if http.path.is_empty() {
                "/".into()
            } else {
                http.path.clone()
            },
            headers: http
                .http_headers
                .iter()
                .map(|h| wire::HttpHeader {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
        }
    } else if let Some(tcp) = &p.tcp_socket {
        wire::ProbeAction::TcpSocket {
            host: tcp.host.clone(),
            port: named(&tcp.port)?,
        }
    } else if p.grpc.is_some() {
        return Err(Unresolved::config(format!(
            "{which} probe of container {:?}: grpc probes are not supported on devices",
            c.name
        )));
    } else {
        return Err(Unresolved::config(format!(
            "{which} probe of container {:?} has no handler",
            c.name
        )));
    };
    let or = |value: i32, default: u32| {
        if value > 0 {
            u32::try_from(value).unwrap_or(default)
        } else {
            default
        }
    };
    Ok(wire::Probe {
        action,
        initial_delay_seconds: u32::try_from(p.initial_delay_seconds.max(0)).unwrap_or(0),
        period_seconds: or(p.period_seconds, 10),
        timeout_seconds: or(p.timeout_seconds, 1),
        success_threshold: or(p.success_threshold, 1),
        failure_threshold: or(p.failure_threshold, 3),
    })
}

/// The container's security context with the pod's defaults merged in.
/// Seccomp defaults to the runtime's profile (kubelet's
/// `--seccomp-default`): devices run with a syscall allowlist unless a pod
/// asks for `Unconfined`.
fn security(
    c: &model::Container,
    pod: Option<&PodSecurityContext>,
) -> Result<wire::SecurityContext, Unresolved> {
    let own = c.security_context.clone().unwrap_or_default();
    let pod = pod.cloned().unwrap_or_default();
    let capabilities = own.capabilities.unwrap_or_default();
    let privileged = own.privileged.unwrap_or(false);
    let sys_admin = capabilities
        .add
        .iter()
        .any(|c| c.trim_start_matches("CAP_") == "SYS_ADMIN");
    let seccomp = match own.seccomp_profile.or(pod.seccomp_profile) {
        None => wire::Seccomp::RuntimeDefault,
        Some(profile) => match profile.type_.as_str() {
            "Unconfined" => wire::Seccomp::Unconfined,
            "RuntimeDefault" => wire::Seccomp::RuntimeDefault,
            "Localhost" => wire::Seccomp::Localhost {
                profile: profile.localhost_profile.unwrap_or_default(),
            },
            other => {
                return Err(Unresolved::config(format!(
                    "container {:?}: unknown seccomp profile type {other:?}",
                    c.name
                )));
            }
        },
    };
    Ok(wire::SecurityContext {
        run_as_user: own.run_as_user.or(pod.run_as_user).map(id).transpose()?,
        run_as_group: own.run_as_group.or(pod.run_as_group).map(id).transpose()?,
        run_as_non_root: own.run_as_non_root.or(pod.run_as_non_root).unwrap_or(false),
        allow_privilege_escalation: privileged
            || sys_admin
            || own.allow_privilege_escalation.unwrap_or(true),
        capabilities: wire::Capabilities {
            add: capabilities.add,
            drop: capabilities.drop,
        },
        privileged,
        read_only_root_filesystem: own.read_only_root_filesystem.unwrap_or(false),
        seccomp,
    })
}
