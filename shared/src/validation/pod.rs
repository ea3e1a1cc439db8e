//! Pods and pod templates: `ValidatePodSpec` and what it calls.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::meta::validate_labels;
use super::{ErrorList, FieldError, Path, names, validate_object_meta};
use crate::model::{
    Affinity, Container, ContainerPort, EnvFromSource, EnvVar, IntOrString, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Probe, Resource, ResourceRequirements, Toleration, Volume,
    VolumeSourceRef,
};
use crate::selector::{validate_label_key, validate_label_value};

pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
pub const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
/// Sorted, as Kubernetes lists them (`sets.List`).
pub const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
pub const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
pub const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
pub const TOLERATION_OPERATORS: &[&str] = &["Equal", "Exists"];
pub const NODE_SELECTOR_OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];
/// Sorted, as Kubernetes lists them (`sets.List`).
pub const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];
pub const SECCOMP_TYPES: &[&str] = &["Localhost", "RuntimeDefault", "Unconfined"];
/// What `env[].valueFrom.fieldRef.fieldPath` may name.
pub const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// What `env[].valueFrom.resourceFieldRef.resource` may name, sorted as Kubernetes lists them.
pub const ENV_RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// A Pod as admission sees it on create.
pub fn validate_pod(pod: &Pod) -> ErrorList {
    let mut errors = validate_object_meta(&pod.metadata, Pod::NAMESPACED, names::dns1123_subdomain);
    errors.extend(validate_pod_spec(&pod.spec, &Path::new("spec")));
    errors
}

/// A workload's pod template, with the restart policies the workload allows.
pub fn validate_pod_template(
    template: &PodTemplateSpec,
    path: &Path,
    restart_policies: &[&str],
) -> ErrorList {
    let mut errors = ErrorList::new();
    let meta = path.child("metadata");
    errors.extend(validate_labels(
        &template.metadata.labels,
        &meta.child("labels"),
    ));
    let spec_path = path.child("spec");
    errors.extend(validate_pod_spec(&template.spec, &spec_path));
    let policy = template.spec.restart_policy.as_str();
    // An empty policy is defaulted to Always, which every workload but Job accepts.
    let effective = if policy.is_empty() { "Always" } else { policy };
    if RESTART_POLICIES.contains(&effective) && !restart_policies.contains(&effective) {
        let at = spec_path.child("restartPolicy");
        errors.push(if policy.is_empty() {
            let quoted: Vec<String> = restart_policies.iter().map(|p| format!("{p:?}")).collect();
            FieldError::required(&at, &format!("valid values: {}", quoted.join(", ")))
        } else {
            FieldError::not_supported(&at, policy, restart_policies)
        });
    }
    errors
}

/// `ValidatePodSpec`.
pub fn validate_pod_spec(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errors = ErrorList::new();
    let volume_names = validate_volumes(&spec.volumes, &path.child("volumes"), &mut errors);

    if spec.containers.is_empty() {
        errors.push(FieldError::required(&path.child("containers"), ""));
    }
    // As in Kubernetes, app containers come first, so a name an init container
    // shares with an app container is reported on the init container.
    let mut container_names = BTreeSet::new();
    for (i, container) in spec.containers.iter().enumerate() {
        let at = path.child("containers").index(i);
        let ctx = ContainerContext {
            init: false,
            host_network: spec.host_network,
            volumes: &volume_names,
        };
        validate_container(container, &at, &ctx, &mut errors);
        check_unique_container_name(container, &at, &mut container_names, &mut errors);
        check_unique_port_names(&container.ports, &at, &mut errors);
    }
    for (i, container) in spec.init_containers.iter().enumerate() {
        let at = path.child("initContainers").index(i);
        let ctx = ContainerContext {
            init: true,
            host_network: spec.host_network,
            volumes: &volume_names,
        };
        validate_container(container, &at, &ctx, &mut errors);
        check_unique_container_name(container, &at, &mut container_names, &mut errors);
        check_unique_port_names(&container.ports, &at, &mut errors);
    }
    check_host_port_conflicts(spec, path, &mut errors);

    if !spec.restart_policy.is_empty() && !RESTART_POLICIES.contains(&spec.restart_policy.as_str())
    {
        errors.push(FieldError::not_supported(
            &path.child("restartPolicy"),
            &spec.restart_policy,
            RESTART_POLICIES,
        ));
    }
    if !spec.dns_policy.is_empty() && !DNS_POLICIES.contains(&spec.dns_policy.as_str()) {
        errors.push(FieldError::not_supported(
            &path.child("dnsPolicy"),
            &spec.dns_policy,
            DNS_POLICIES,
        ));
    }
    if !spec.node_name.is_empty() {
        for msg in names::dns1123_subdomain(&spec.node_name) {
            errors.push(FieldError::invalid(
                &path.child("nodeName"),
                &spec.node_name,
                msg,
            ));
        }
    }
    errors.extend(validate_labels(
        &spec.node_selector,
        &path.child("nodeSelector"),
    ));
    if let Some(seconds) = spec.termination_grace_period_seconds
        && seconds < 0
    {
        errors.push(FieldError::invalid_raw(
            &path.child("terminationGracePeriodSeconds"),
            seconds,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(seconds) = spec.active_deadline_seconds
        && seconds <= 0
    {
        errors.push(FieldError::invalid_raw(
            &path.child("activeDeadlineSeconds"),
            seconds,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for (i, toleration) in spec.tolerations.iter().enumerate() {
        validate_toleration(toleration, &path.child("tolerations").index(i), &mut errors);
    }
    if let Some(affinity) = &spec.affinity {
        validate_affinity(affinity, &path.child("affinity"), &mut errors);
    }
    if let Some(security) = &spec.security_context {
        let at = path.child("securityContext");
        check_id(security.run_as_user, &at.child("runAsUser"), &mut errors);
        check_id(security.run_as_group, &at.child("runAsGroup"), &mut errors);
        check_id(security.fs_group, &at.child("fsGroup"), &mut errors);
        for (i, gid) in security.supplemental_groups.iter().enumerate() {
            check_id(
                Some(*gid),
                &at.child("supplementalGroups").index(i),
                &mut errors,
            );
        }
        if let Some(seccomp) = &security.seccomp_profile {
            check_seccomp(
                &seccomp.type_,
                seccomp.localhost_profile.as_deref(),
                &at.child("seccompProfile"),
                &mut errors,
            );
        }
    }
    errors
}

struct ContainerContext<'a> {
    init: bool,
    host_network: bool,
    volumes: &'a BTreeSet<&'a str>,
}

fn validate_container(
    container: &Container,
    path: &Path,
    ctx: &ContainerContext<'_>,
    errors: &mut ErrorList,
) {
    if container.name.is_empty() {
        errors.push(FieldError::required(&path.child("name"), ""));
    } else {
        for msg in names::dns1123_label(&container.name) {
            errors.push(FieldError::invalid(
                &path.child("name"),
                &container.name,
                msg,
            ));
        }
    }
    if container.image.trim().is_empty() {
        errors.push(FieldError::required(&path.child("image"), ""));
    } else if container.image.trim() != container.image {
        errors.push(FieldError::invalid(
            &path.child("image"),
            &container.image,
            "must not have leading or trailing whitespace",
        ));
    }
    if !container.image_pull_policy.is_empty()
        && !PULL_POLICIES.contains(&container.image_pull_policy.as_str())
    {
        errors.push(FieldError::not_supported(
            &path.child("imagePullPolicy"),
            &container.image_pull_policy,
            PULL_POLICIES,
        ));
    }
    let sidecar = ctx.init && container.restart_policy.as_deref() == Some("Always");
    if let Some(policy) = &container.restart_policy {
        let at = path.child("restartPolicy");
        if !ctx.init {
            errors.push(FieldError::forbidden(
                &at,
                "may not be set for non-init containers",
            ));
        } else if policy != "Always" {
            errors.push(FieldError::not_supported(&at, policy, &["Always"]));
        }
    }
    for (i, port) in container.ports.iter().enumerate() {
        validate_container_port(
            port,
            &path.child("ports").index(i),
            ctx.host_network,
            errors,
        );
    }
    for (i, env) in container.env.iter().enumerate() {
        validate_env(env, &path.child("env").index(i), errors);
    }
    for (i, source) in container.env_from.iter().enumerate() {
        validate_env_from(source, &path.child("envFrom").index(i), errors);
    }
    validate_resources(&container.resources, &path.child("resources"), errors);
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in container.volume_mounts.iter().enumerate() {
        let at = path.child("volumeMounts").index(i);
        if mount.name.is_empty() {
            errors.push(FieldError::required(&at.child("name"), ""));
        } else if !ctx.volumes.contains(mount.name.as_str()) {
            errors.push(FieldError::not_found(&at.child("name"), &mount.name));
        }
        if mount.mount_path.is_empty() {
            errors.push(FieldError::required(&at.child("mountPath"), ""));
        } else if !mount_paths.insert(mount.mount_path.as_str()) {
            errors.push(FieldError::invalid(
                &at.child("mountPath"),
                &mount.mount_path,
                "must be unique",
            ));
        }
        if !mount.sub_path.is_empty() {
            check_relative_path(&mount.sub_path, &at.child("subPath"), errors);
        }
    }
    let probes = [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ];
    for (field, probe) in probes {
        let Some(probe) = probe else { continue };
        let at = path.child(field);
        if ctx.init && !sidecar {
            errors.push(FieldError::forbidden(
                &at,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(probe, &at, field != "readinessProbe", errors);
    }
    if let Some(security) = &container.security_context {
        let at = path.child("securityContext");
        check_id(security.run_as_user, &at.child("runAsUser"), errors);
        check_id(security.run_as_group, &at.child("runAsGroup"), errors);
        if security.privileged == Some(true) && security.allow_privilege_escalation == Some(false) {
            errors.push(FieldError::invalid(
                &at,
                "",
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if let Some(seccomp) = &security.seccomp_profile {
            check_seccomp(
                &seccomp.type_,
                seccomp.localhost_profile.as_deref(),
                &at.child("seccompProfile"),
                errors,
            );
        }
        if let Some(caps) = &security.capabilities {
            for (field, list) in [("add", &caps.add), ("drop", &caps.drop)] {
                for (i, cap) in list.iter().enumerate() {
                    let valid = !cap.is_empty()
                        && cap.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
                    if !valid {
                        errors.push(FieldError::invalid(
                            &at.child("capabilities").child(field).index(i),
                            cap,
                            "must be a capability name such as NET_ADMIN",
                        ));
                    }
                }
            }
        }
    }
}

/// `ValidateEnvFrom` (Kubernetes reports the source count at `envFrom`
/// without the index; the index is kept here so the entry can be found).
fn validate_env_from(source: &EnvFromSource, at: &Path, errors: &mut ErrorList) {
    if !source.prefix.is_empty() {
        for msg in names::env_var_name(&source.prefix) {
            errors.push(FieldError::invalid(
                &at.child("prefix"),
                &source.prefix,
                msg,
            ));
        }
    }
    let refs = [
        (
            "configMapRef",
            source.config_map_ref.as_ref().map(|r| &r.name),
        ),
        ("secretRef", source.secret_ref.as_ref().map(|r| &r.name)),
    ];
    let mut count = 0;
    for (field, name) in refs {
        let Some(name) = name else { continue };
        count += 1;
        let np = at.child(field).child("name");
        if name.is_empty() {
            errors.push(FieldError::required(&np, ""));
        } else {
            for msg in names::dns1123_subdomain(name) {
                errors.push(FieldError::invalid(&np, name, msg));
            }
        }
    }
    if count == 0 {
        errors.push(FieldError::invalid(
            at,
            "",
            "must specify one of: `configMapRef` or `secretRef`",
        ));
    } else if count > 1 {
        errors.push(FieldError::invalid(
            at,
            "",
            "may not have more than one field specified at a time",
        ));
    }
}

fn check_unique_container_name<'a>(
    container: &'a Container,
    path: &Path,
    seen: &mut BTreeSet<&'a str>,
    errors: &mut ErrorList,
) {
    if !container.name.is_empty() && !seen.insert(container.name.as_str()) {
        errors.push(FieldError::duplicate(&path.child("name"), &container.name));
    }
}

/// Port names are unique within one container. Kubernetes only warns about a
/// name shared by two containers of a pod, so that is not an error here either.
fn check_unique_port_names(ports: &[ContainerPort], path: &Path, errors: &mut ErrorList) {
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !port.name.is_empty() && !seen.insert(port.name.as_str()) {
            errors.push(FieldError::duplicate(
                &path.child("ports").index(i).child("name"),
                &port.name,
            ));
        }
    }
}

/// Two containers of one pod may not claim the same host port and protocol.
fn check_host_port_conflicts(spec: &PodSpec, path: &Path, errors: &mut ErrorList) {
    let mut seen = BTreeSet::new();
    for (i, container) in spec.containers.iter().enumerate() {
        for (j, port) in container.ports.iter().enumerate() {
            let host_port = if spec.host_network {
                port.container_port
            } else {
                port.host_port
            };
            if host_port == 0 {
                continue;
            }
            let protocol = if port.protocol.is_empty() {
                "TCP"
            } else {
                port.protocol.as_str()
            };
            if !seen.insert((host_port, protocol, port.host_ip.as_str())) {
                let at = path
                    .child("containers")
                    .index(i)
                    .child("ports")
                    .index(j)
                    .child("hostPort");
                // Kubernetes' key: hostIP/protocol/hostPort.
                errors.push(FieldError::duplicate(
                    &at,
                    &format!("{}/{protocol}/{host_port}", port.host_ip),
                ));
            }
        }
    }
}

fn validate_container_port(
    port: &ContainerPort,
    path: &Path,
    host_network: bool,
    errors: &mut ErrorList,
) {
    if !port.name.is_empty() {
        for msg in names::port_name(&port.name) {
            errors.push(FieldError::invalid(&path.child("name"), &port.name, msg));
        }
    }
    if port.container_port == 0 {
        errors.push(FieldError::required(&path.child("containerPort"), ""));
    } else {
        for msg in names::port_number(port.container_port) {
            errors.push(FieldError::invalid_raw(
                &path.child("containerPort"),
                port.container_port,
                msg,
            ));
        }
    }
    if port.host_port != 0 {
        for msg in names::port_number(port.host_port) {
            errors.push(FieldError::invalid_raw(
                &path.child("hostPort"),
                port.host_port,
                msg,
            ));
        }
        if host_network && port.host_port != port.container_port {
            errors.push(FieldError::invalid_raw(
                &path.child("hostPort"),
                port.host_port,
                "must match `containerPort` when `hostNetwork` is true",
            ));
        }
    }
    if !port.protocol.is_empty() && !PROTOCOLS.contains(&port.protocol.as_str()) {
        errors.push(FieldError::not_supported(
            &path.child("protocol"),
            &port.protocol,
            PROTOCOLS,
        ));
    }
    if !port.host_ip.is_empty() && port.host_ip.parse::<IpAddr>().is_err() {
        errors.push(FieldError::invalid(
            &path.child("hostIP"),
            &port.host_ip,
            "must be a valid IP address",
        ));
    }
}

fn validate_env(env: &EnvVar, path: &Path, errors: &mut ErrorList) {
    if env.name.is_empty() {
        errors.push(FieldError::required(&path.child("name"), ""));
    } else {
        for msg in names::env_var_name(&env.name) {
            errors.push(FieldError::invalid(&path.child("name"), &env.name, msg));
        }
    }
    let Some(source) = &env.value_from else {
        return;
    };
    let at = path.child("valueFrom");
    let mut count = 0;
    if let Some(field) = &source.field_ref {
        count += 1;
        let fp = at.child("fieldRef").child("fieldPath");
        if field.field_path.is_empty() {
            errors.push(FieldError::required(&fp, ""));
        } else if !is_supported_env_field(&field.field_path) {
            errors.push(FieldError::not_supported(
                &fp,
                &field.field_path,
                ENV_FIELD_PATHS,
            ));
        }
    }
    if let Some(resource) = &source.resource_field_ref {
        count += 1;
        let rp = at.child("resourceFieldRef").child("resource");
        if resource.resource.is_empty() {
            errors.push(FieldError::required(&rp, ""));
        } else if !ENV_RESOURCE_FIELDS.contains(&resource.resource.as_str()) {
            errors.push(FieldError::not_supported(
                &rp,
                &resource.resource,
                ENV_RESOURCE_FIELDS,
            ));
        }
    }
    if let Some(key_ref) = &source.config_map_key_ref {
        count += 1;
        check_key_ref(
            &key_ref.name,
            &key_ref.key,
            &at.child("configMapKeyRef"),
            errors,
        );
    }
    if let Some(key_ref) = &source.secret_key_ref {
        count += 1;
        check_key_ref(
            &key_ref.name,
            &key_ref.key,
            &at.child("secretKeyRef"),
            errors,
        );
    }
    if count == 0 {
        errors.push(FieldError::invalid(&at, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
    } else if !env.value.is_empty() {
        errors.push(FieldError::invalid(
            &at,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if count > 1 {
        errors.push(FieldError::invalid(
            &at,
            "",
            "may not have more than one field specified at a time",
        ));
    }
}

fn is_supported_env_field(path: &str) -> bool {
    if ENV_FIELD_PATHS.contains(&path) {
        return true;
    }
    // metadata.labels['key'] and metadata.annotations['key'].
    ["metadata.labels['", "metadata.annotations['"]
        .iter()
        .any(|prefix| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix("']"))
                .is_some_and(|key| validate_label_key(key).is_empty())
        })
}

fn check_key_ref(name: &str, key: &str, path: &Path, errors: &mut ErrorList) {
    if name.is_empty() {
        errors.push(FieldError::required(&path.child("name"), ""));
    }
    if key.is_empty() {
        errors.push(FieldError::required(&path.child("key"), ""));
    } else {
        for msg in names::config_key(key) {
            errors.push(FieldError::invalid(&path.child("key"), key, msg));
        }
    }
}

/// Resource names, quantities that parse and are not negative, and requests
/// no larger than limits.
fn validate_resources(resources: &ResourceRequirements, path: &Path, errors: &mut ErrorList) {
    let limits = parse_resource_list(&resources.limits, &path.child("limits"), errors);
    let requests = parse_resource_list(&resources.requests, &path.child("requests"), errors);
    for (name, request) in &requests {
        if let Some(limit) = limits.get(name)
            && request > limit
        {
            let quantity = &resources.requests[*name].0;
            let detail = format!(
                "must be less than or equal to {name} limit of {}",
                resources.limits[*name].0
            );
            errors.push(FieldError::invalid(
                &path.child("requests").key(name),
                quantity,
                detail,
            ));
        }
    }
}

/// The quantities of one resource list that are valid, by resource name.
fn parse_resource_list<'a>(
    list: &'a BTreeMap<String, crate::quantity::Quantity>,
    path: &Path,
    errors: &mut ErrorList,
) -> BTreeMap<&'a str, crate::quantity::Amount> {
    let mut out = BTreeMap::new();
    for (name, quantity) in list {
        let at = path.key(name);
        let name_errors = resource_name_errors(name);
        if !name_errors.is_empty() {
            for msg in name_errors {
                errors.push(FieldError::invalid(&at, name, msg));
            }
            continue;
        }
        match quantity.parse() {
            Ok(amount) if amount < crate::quantity::Amount::zero() => {
                errors.push(FieldError::invalid(
                    &at,
                    &quantity.0,
                    "must be greater than or equal to 0",
                ));
            }
            Ok(amount) => {
                out.insert(name.as_str(), amount);
            }
            Err(e) => errors.push(FieldError::invalid(&at, &quantity.0, e.reason())),
        }
    }
    out
}

/// Kubernetes' `validateContainerResourceName`: a qualified name; without a
/// domain, a standard resource name and one that containers may ask for.
fn resource_name_errors(name: &str) -> Vec<String> {
    // `IsStandardResourceName`, less the quota-only names Flotilla has no use for.
    const STANDARD: &[&str] = &[
        "cpu",
        "memory",
        "ephemeral-storage",
        "storage",
        "pods",
        "services",
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
    ];
    const CONTAINER: &[&str] = &["cpu", "memory", "ephemeral-storage"];
    let mut errors = validate_label_key(name);
    if !errors.is_empty() || name.contains('/') {
        return errors;
    }
    let huge_pages = name.starts_with("hugepages-");
    if !STANDARD.contains(&name) && !huge_pages {
        errors.push("must be a standard resource type or fully qualified".to_owned());
    }
    if !CONTAINER.contains(&name) && !huge_pages {
        errors.push("must be a standard resource for containers".to_owned());
    }
    errors
}

fn validate_probe(probe: &Probe, path: &Path, success_must_be_one: bool, errors: &mut ErrorList) {
    // Kubernetes reports each handler after the first at its own field.
    let handlers = [
        ("exec", probe.exec.is_some()),
        ("httpGet", probe.http_get.is_some()),
        ("tcpSocket", probe.tcp_socket.is_some()),
        ("grpc", probe.grpc.is_some()),
    ];
    let mut count = 0;
    for (field, set) in handlers {
        if !set {
            continue;
        }
        if count > 0 {
            errors.push(FieldError::forbidden(
                &path.child(field),
                "may not specify more than 1 handler type",
            ));
        }
        count += 1;
    }
    if count == 0 {
        errors.push(FieldError::required(path, "must specify a handler type"));
    }
    if let Some(exec) = &probe.exec
        && exec.command.is_empty()
    {
        errors.push(FieldError::required(
            &path.child("exec").child("command"),
            "",
        ));
    }
    if let Some(http) = &probe.http_get {
        check_probe_port(&http.port, &path.child("httpGet").child("port"), errors);
        if !http.scheme.is_empty() && !["HTTP", "HTTPS"].contains(&http.scheme.as_str()) {
            errors.push(FieldError::not_supported(
                &path.child("httpGet").child("scheme"),
                &http.scheme,
                &["HTTP", "HTTPS"],
            ));
        }
    }
    if let Some(tcp) = &probe.tcp_socket {
        check_probe_port(&tcp.port, &path.child("tcpSocket").child("port"), errors);
    }
    if let Some(grpc) = &probe.grpc {
        for msg in names::port_number(grpc.port) {
            errors.push(FieldError::invalid_raw(
                &path.child("grpc").child("port"),
                grpc.port,
                msg,
            ));
        }
    }
    let timings = [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ];
    for (field, value) in timings {
        if value < 0 {
            errors.push(FieldError::invalid_raw(
                &path.child(field),
                value,
                "must be greater than or equal to 0",
            ));
        }
    }
    if success_must_be_one && probe.success_threshold > 1 {
        errors.push(FieldError::invalid_raw(
            &path.child("successThreshold"),
            probe.success_threshold,
            "must be 1",
        ));
    }
}

fn check_probe_port(port: &IntOrString, path: &Path, errors: &mut ErrorList) {
    match port {
        IntOrString::Int(n) => {
            for msg in names::port_number(*n) {
                errors.push(FieldError::invalid_raw(path, n, msg));
            }
        }
        IntOrString::String(name) => {
            for msg in names::port_name(name) {
                errors.push(FieldError::invalid(path, name, msg));
            }
        }
    }
}

/// Checks the volumes and returns their names, for volumeMounts to refer to.
fn validate_volumes<'a>(
    volumes: &'a [Volume],
    path: &Path,
    errors: &mut ErrorList,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let at = path.index(i);
        if volume.name.is_empty() {
            errors.push(FieldError::required(&at.child("name"), ""));
        } else {
            for msg in names::dns1123_label(&volume.name) {
                errors.push(FieldError::invalid(&at.child("name"), &volume.name, msg));
            }
            if !seen.insert(volume.name.as_str()) {
                errors.push(FieldError::duplicate(&at.child("name"), &volume.name));
            }
        }
        let sources = volume.sources();
        if sources.is_empty() {
            errors.push(FieldError::required(&at, "must specify a volume type"));
        }
        // Kubernetes reports each source after the first at its own field.
        for source in sources.iter().skip(1) {
            errors.push(FieldError::forbidden(
                &at.child(source_field(source)),
                "may not specify more than 1 volume type",
            ));
        }
        if let Some(empty_dir) = &volume.empty_dir {
            if !empty_dir.medium.is_empty()
                && !["Memory", "HugePages"].contains(&empty_dir.medium.as_str())
            {
                errors.push(FieldError::not_supported(
                    &at.child("emptyDir").child("medium"),
                    &empty_dir.medium,
                    &["", "Memory", "HugePages"],
                ));
            }
            if let Some(limit) = &empty_dir.size_limit
                && let Err(e) = limit.parse()
            {
                errors.push(FieldError::invalid(
                    &at.child("emptyDir").child("sizeLimit"),
                    &limit.0,
                    e.reason(),
                ));
            }
        }
        if let Some(host_path) = &volume.host_path {
            let hp = at.child("hostPath");
            if host_path.path.is_empty() {
                errors.push(FieldError::required(&hp.child("path"), ""));
            } else if host_path.path.split('/').any(|part| part == "..") {
                errors.push(FieldError::invalid(
                    &hp.child("path"),
                    &host_path.path,
                    "must not contain '..'",
                ));
            }
            if let Some(kind) = &host_path.type_
                && !HOST_PATH_TYPES.contains(&kind.as_str())
            {
                errors.push(FieldError::not_supported(
                    &hp.child("type"),
                    kind,
                    HOST_PATH_TYPES,
                ));
            }
        }
        if let Some(cm) = &volume.config_map {
            let cp = at.child("configMap");
            if cm.name.is_empty() {
                errors.push(FieldError::required(&cp.child("name"), ""));
            }
            check_mode(cm.default_mode, &cp.child("defaultMode"), errors);
            for (j, item) in cm.items.iter().enumerate() {
                check_key_to_path(
                    &item.key,
                    &item.path,
                    item.mode,
                    &cp.child("items").index(j),
                    errors,
                );
            }
        }
        if let Some(secret) = &volume.secret {
            let sp = at.child("secret");
            if secret.secret_name.is_empty() {
                errors.push(FieldError::required(&sp.child("secretName"), ""));
            }
            check_mode(secret.default_mode, &sp.child("defaultMode"), errors);
            for (j, item) in secret.items.iter().enumerate() {
                check_key_to_path(
                    &item.key,
                    &item.path,
                    item.mode,
                    &sp.child("items").index(j),
                    errors,
                );
            }
        }
        if let Some(claim) = &volume.persistent_volume_claim
            && claim.claim_name.is_empty()
        {
            errors.push(FieldError::required(
                &at.child("persistentVolumeClaim").child("claimName"),
                "",
            ));
        }
    }
    seen
}

/// The JSON field of a volume source.
fn source_field(source: &VolumeSourceRef<'_>) -> &'static str {
    match source {
        VolumeSourceRef::HostPath(_) => "hostPath",
        VolumeSourceRef::EmptyDir(_) => "emptyDir",
        VolumeSourceRef::Secret(_) => "secret",
        VolumeSourceRef::PersistentVolumeClaim(_) => "persistentVolumeClaim",
        VolumeSourceRef::DownwardApi(_) => "downwardAPI",
        VolumeSourceRef::ConfigMap(_) => "configMap",
        VolumeSourceRef::Projected(_) => "projected",
    }
}

fn check_key_to_path(
    key: &str,
    file: &str,
    mode: Option<i32>,
    path: &Path,
    errors: &mut ErrorList,
) {
    if key.is_empty() {
        errors.push(FieldError::required(&path.child("key"), ""));
    }
    if file.is_empty() {
        errors.push(FieldError::required(&path.child("path"), ""));
    } else {
        check_relative_path(file, &path.child("path"), errors);
        // `ValidateLocalNonReservedPath`: `..data` is where the kubelet keeps
        // the volume's current files.
        if file.starts_with("..") {
            errors.push(FieldError::invalid(
                &path.child("path"),
                file,
                "must not start with '..'",
            ));
        }
    }
    check_mode(mode, &path.child("mode"), errors);
}

/// A path inside a volume: relative and without `..`.
fn check_relative_path(value: &str, path: &Path, errors: &mut ErrorList) {
    if value.starts_with('/') {
        errors.push(FieldError::invalid(path, value, "must be a relative path"));
    }
    if value.split('/').any(|part| part == "..") {
        errors.push(FieldError::invalid(path, value, "must not contain '..'"));
    }
}

fn check_mode(mode: Option<i32>, path: &Path, errors: &mut ErrorList) {
    if let Some(mode) = mode
        && !(0..=0o777).contains(&mode)
    {
        errors.push(FieldError::invalid_raw(
            path,
            mode,
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
}

fn check_id(id: Option<i64>, path: &Path, errors: &mut ErrorList) {
    if let Some(id) = id
        && !(0..=i64::from(i32::MAX)).contains(&id)
    {
        errors.push(FieldError::invalid_raw(
            path,
            id,
            "must be between 0 and 2147483647, inclusive",
        ));
    }
}

/// `validateSeccompProfileField`.
fn check_seccomp(kind: &str, localhost: Option<&str>, path: &Path, errors: &mut ErrorList) {
    let profile = path.child("localhostProfile");
    match (kind, localhost) {
        ("Localhost", None) => errors.push(FieldError::required(
            &profile,
            "must be set when seccomp type is Localhost",
        )),
        ("Localhost", Some(file)) => check_relative_path(file, &profile, errors),
        ("RuntimeDefault" | "Unconfined", Some(file)) => errors.push(FieldError::invalid(
            &profile,
            file,
            "can only be set when seccomp type is Localhost",
        )),
        ("RuntimeDefault" | "Unconfined", None) => {}
        _ => errors.push(FieldError::not_supported(
            &path.child("type"),
            kind,
            SECCOMP_TYPES,
        )),
    }
}

/// `ValidateTolerations`, in its order.
fn validate_toleration(toleration: &Toleration, path: &Path, errors: &mut ErrorList) {
    if !toleration.key.is_empty() {
        for msg in validate_label_key(&toleration.key) {
            errors.push(FieldError::invalid(
                &path.child("key"),
                &toleration.key,
                msg,
            ));
        }
    }
    if toleration.key.is_empty() && toleration.operator != "Exists" {
        errors.push(FieldError::invalid(&path.child("operator"), &toleration.operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""));
    }
    if toleration.toleration_seconds.is_some() && toleration.effect != "NoExecute" {
        errors.push(FieldError::invalid(
            &path.child("effect"),
            &toleration.effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
    match toleration.operator.as_str() {
        "Exists" => {
            if !toleration.value.is_empty() {
                errors.push(FieldError::invalid(
                    &path.child("operator"),
                    &toleration.value,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        "" | "Equal" => {
            for msg in validate_label_value(&toleration.value) {
                errors.push(FieldError::invalid(
                    &path.child("value"),
                    &toleration.value,
                    msg,
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            &path.child("operator"),
            other,
            TOLERATION_OPERATORS,
        )),
    }
    if !toleration.effect.is_empty() && !TAINT_EFFECTS.contains(&toleration.effect.as_str()) {
        errors.push(FieldError::not_supported(
            &path.child("effect"),
            &toleration.effect,
            TAINT_EFFECTS,
        ));
    }
}

fn validate_affinity(affinity: &Affinity, path: &Path, errors: &mut ErrorList) {
    if let Some(node) = &affinity.node_affinity {
        let at = path.child("nodeAffinity");
        if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
            let rp = at
                .child("requiredDuringSchedulingIgnoredDuringExecution")
                .child("nodeSelectorTerms");
            if required.node_selector_terms.is_empty() {
                errors.push(FieldError::required(
                    &rp,
                    "must have at least one node selector term",
                ));
            }
            for (i, term) in required.node_selector_terms.iter().enumerate() {
                validate_node_selector_term(term, &rp.index(i), errors);
            }
        }
        for (i, preferred) in node
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let pp = at
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            check_weight(preferred.weight, &pp.child("weight"), errors);
            validate_node_selector_term(&preferred.preference, &pp.child("preference"), errors);
        }
    }
    for (field, pod_affinity) in [
        ("podAffinity", &affinity.pod_affinity),
        ("podAntiAffinity", &affinity.pod_anti_affinity),
    ] {
        let Some(pod_affinity) = pod_affinity else {
            continue;
        };
        let at = path.child(field);
        for (i, term) in pod_affinity
            .required_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let tp = at
                .child("requiredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            check_topology_key(&term.topology_key, &tp.child("topologyKey"), errors);
            check_label_selector(
                term.label_selector.as_ref(),
                &tp.child("labelSelector"),
                errors,
            );
        }
        for (i, weighted) in pod_affinity
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let wp = at
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            check_weight(weighted.weight, &wp.child("weight"), errors);
            let tp = wp.child("podAffinityTerm");
            check_topology_key(
                &weighted.pod_affinity_term.topology_key,
                &tp.child("topologyKey"),
                errors,
            );
            check_label_selector(
                weighted.pod_affinity_term.label_selector.as_ref(),
                &tp.child("labelSelector"),
                errors,
            );
        }
    }
}

fn validate_node_selector_term(term: &NodeSelectorTerm, path: &Path, errors: &mut ErrorList) {
    for (field, requirements) in [
        ("matchExpressions", &term.match_expressions),
        ("matchFields", &term.match_fields),
    ] {
        for (i, req) in requirements.iter().enumerate() {
            let at = path.child(field).index(i);
            if field == "matchFields" && req.key != "metadata.name" {
                errors.push(FieldError::invalid(
                    &at.child("key"),
                    &req.key,
                    "not a valid field selector key",
                ));
            } else {
                for msg in validate_label_key(&req.key) {
                    errors.push(FieldError::invalid(&at.child("key"), &req.key, msg));
                }
            }
            let values = at.child("values");
            match req.operator.as_str() {
                "In" | "NotIn" if req.values.is_empty() => {
                    errors.push(FieldError::required(
                        &values,
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
                "Exists" | "DoesNotExist" if !req.values.is_empty() => {
                    errors.push(FieldError::forbidden(
                        &values,
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
                "Gt" | "Lt" => {
                    if req.values.len() != 1 {
                        errors.push(FieldError::required(
                            &values,
                            "must be specified single value when `operator` is 'Lt' or 'Gt'",
                        ));
                    } else if req.values[0].parse::<i64>().is_err() {
                        errors.push(FieldError::invalid(
                            &values.index(0),
                            &req.values[0],
                            "must be an integer",
                        ));
                    }
                }
                op if !NODE_SELECTOR_OPERATORS.contains(&op) => {
                    errors.push(FieldError::invalid(
                        &at.child("operator"),
                        op,
                        "not a valid selector operator",
                    ));
                }
                _ => {}
            }
        }
    }
}

fn check_weight(weight: i32, path: &Path, errors: &mut ErrorList) {
    if !(1..=100).contains(&weight) {
        errors.push(FieldError::invalid_raw(
            path,
            weight,
            "must be in the range 1-100",
        ));
    }
}

fn check_topology_key(key: &str, path: &Path, errors: &mut ErrorList) {
    if key.is_empty() {
        errors.push(FieldError::required(path, "can not be empty"));
    } else {
        for msg in validate_label_key(key) {
            errors.push(FieldError::invalid(path, key, msg));
        }
    }
}

/// A `LabelSelector` that compiles, with each problem at its field.
pub(super) fn check_label_selector(
    selector: Option<&crate::model::LabelSelector>,
    path: &Path,
    errors: &mut ErrorList,
) {
    let Some(selector) = selector else { return };
    errors.extend(validate_labels(
        &selector.match_labels,
        &path.child("matchLabels"),
    ));
    for (i, req) in selector.match_expressions.iter().enumerate() {
        let at = path.child("matchExpressions").index(i);
        for msg in validate_label_key(&req.key) {
            errors.push(FieldError::invalid(&at.child("key"), &req.key, msg));
        }
        match req.operator.as_str() {
            "In" | "NotIn" if req.values.is_empty() => {
                errors.push(FieldError::required(
                    &at.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
            "Exists" | "DoesNotExist" if !req.values.is_empty() => {
                errors.push(FieldError::forbidden(
                    &at.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => errors.push(FieldError::invalid(
                &at.child("operator"),
                op,
                "not a valid selector operator",
            )),
        }
        for (j, value) in req.values.iter().enumerate() {
            for msg in validate_label_value(value) {
                errors.push(FieldError::invalid(
                    &at.child("values").index(j),
                    value,
                    msg,
                ));
            }
        }
    }
}
