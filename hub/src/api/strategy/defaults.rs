//! Defaulting, as Kubernetes applies it when it decodes an object:
//! `pkg/apis/core/v1/defaults.go` (pods, pod templates, services, secrets,
//! namespaces, nodes, endpoints), `pkg/apis/apps/v1/defaults.go`,
//! `pkg/apis/batch/v1/defaults.go` and `pkg/apis/rbac/v1/defaults.go`.
//!
//! Only unset fields are filled in, so defaulting is idempotent. Two steps
//! that Kubernetes performs during conversion rather than defaulting live
//! here too because they have the same shape: a Secret's `stringData` is
//! merged into `data`, and a Node's `podCIDR` and `podCIDRs` are kept in
//! step. A Service's `ipFamilyPolicy` and `ipFamilies`, which the
//! Service registry fills in when it allocates addresses, are defaulted
//! for a single-stack cluster.

use std::net::IpAddr;

use flotilla_shared::model::{
    ClientIpConfig, Container, DaemonSet, Deployment, Endpoints, HttpGetAction, IntOrString, Job,
    Lifecycle, LifecycleHandler, Namespace, Node, Object, ObjectFieldSelector, Pod, PodSpec,
    PodTemplateSpec, Probe, ReplicaSet, ResourceFieldSelector, RoleRef, Secret, Service,
    SessionAffinityConfig, Subject, Volume, image_pull_policy, restart_policy,
};
use flotilla_shared::quantity::Quantity;

/// The label every Namespace carries with its own name (`v1.LabelMetadataName`).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// `v1.DefaultTerminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `v1.DefaultSchedulerName`.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// `v1.TerminationMessagePathDefault`.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// File mode 0644 of configMap, secret, downwardAPI and projected volumes.
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;
/// `v1.DefaultClientIPServiceAffinitySeconds`: three hours.
pub const DEFAULT_CLIENT_IP_AFFINITY_SECONDS: i32 = 10800;
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Fills in every field Kubernetes defaults for `object`'s kind. Pod
/// templates inside workloads get the pod spec defaults; the defaults
/// Kubernetes applies to Pods only (`enableServiceLinks`, requests taken
/// from limits, host ports under `hostNetwork`) stay on Pods.
pub fn apply_defaults(object: &mut Object) {
    match object {
        Object::Namespace(ns) => namespace(ns),
        Object::Node(node) => node_defaults(node),
        Object::Pod(pod) => pod_defaults(pod),
        Object::ReplicaSet(rs) => replica_set(rs),
        Object::Deployment(d) => deployment(d),
        Object::DaemonSet(ds) => daemon_set(ds),
        Object::Job(job) => job_defaults(job),
        Object::Service(svc) => service(svc),
        Object::Endpoints(ep) => endpoints(ep),
        Object::Secret(secret) => secret_defaults(secret),
        Object::RoleBinding(b) => role_binding(&mut b.role_ref, &mut b.subjects),
        Object::ClusterRoleBinding(b) => role_binding(&mut b.role_ref, &mut b.subjects),
        Object::ConfigMap(_)
        | Object::Event(_)
        | Object::Lease(_)
        | Object::Role(_)
        | Object::ClusterRole(_) => {}
    }
}

fn namespace(ns: &mut Namespace) {
    // Namespaces created with generateName get the label once named.
    if !ns.metadata.name.is_empty() {
        ns.metadata
            .labels
            .insert(NAMESPACE_NAME_LABEL.to_owned(), ns.metadata.name.clone());
    }
    set_if_empty(&mut ns.status.phase, "Active");
}

fn node_defaults(node: &mut Node) {
    let status = &mut node.status;
    if status.allocatable.is_empty() && !status.capacity.is_empty() {
        status.allocatable = status.capacity.clone();
    }
    // v1 conversion: `podCIDR` is the first of `podCIDRs`.
    let spec = &mut node.spec;
    if spec.pod_cidrs.is_empty() && !spec.pod_cidr.is_empty() {
        spec.pod_cidrs = vec![spec.pod_cidr.clone()];
    }
    if spec.pod_cidr.is_empty()
        && let Some(first) = spec.pod_cidrs.first()
    {
        spec.pod_cidr = first.clone();
    }
}

fn pod_defaults(pod: &mut Pod) {
    let spec = &mut pod.spec;
    for container in spec.containers.iter_mut().chain(&mut spec.init_containers) {
        let resources = &mut container.resources;
        for (name, limit) in &resources.limits {
            resources
                .requests
                .entry(name.clone())
                .or_insert_with(|| limit.clone());
        }
    }
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network {
        for container in spec.containers.iter_mut().chain(&mut spec.init_containers) {
            for port in &mut container.ports {
                if port.host_port == 0 {
                    port.host_port = port.container_port;
                }
            }
        }
    }
    pod_spec(spec);
}

fn template(template: &mut PodTemplateSpec) {
    pod_spec(&mut template.spec);
}

/// `SetDefaults_PodSpec` and the defaults of everything a pod spec holds.
fn pod_spec(spec: &mut PodSpec) {
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.restart_policy, restart_policy::ALWAYS);
    spec.security_context.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    set_if_empty(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    for container in spec.containers.iter_mut().chain(&mut spec.init_containers) {
        container_defaults(container);
    }
    for volume in &mut spec.volumes {
        volume_defaults(volume);
    }
}

fn container_defaults(container: &mut Container) {
    if container.image_pull_policy.is_empty() {
        container.image_pull_policy = if image_tag_is_latest(&container.image) {
            image_pull_policy::ALWAYS
        } else {
            image_pull_policy::IF_NOT_PRESENT
        }
        .to_owned();
    }
    set_if_empty(
        &mut container.termination_message_path,
        DEFAULT_TERMINATION_MESSAGE_PATH,
    );
    set_if_empty(&mut container.termination_message_policy, "File");
    for port in &mut container.ports {
        set_if_empty(&mut port.protocol, "TCP");
    }
    for env in &mut container.env {
        if let Some(source) = &mut env.value_from {
            if let Some(field) = &mut source.field_ref {
                field_selector(field);
            }
            if let Some(resource) = &mut source.resource_field_ref {
                resource_selector(resource);
            }
        }
    }
    for probe in [
        &mut container.liveness_probe,
        &mut container.readiness_probe,
        &mut container.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        probe_defaults(probe);
    }
    if let Some(Lifecycle {
        post_start,
        pre_stop,
        ..
    }) = &mut container.lifecycle
    {
        for hook in [post_start, pre_stop].into_iter().flatten() {
            let LifecycleHandler { http_get, .. } = hook;
            if let Some(action) = http_get {
                http_get_defaults(action);
            }
        }
    }
}

/// Whether Kubernetes' `parsers.ParseImageName` reads the tag of `image` as
/// `latest`: written so, or neither tag nor digest given. A reference it
/// cannot parse (empty, upper case in the repository) has no tag.
fn image_tag_is_latest(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_component = name.rsplit('/').next().unwrap_or(name);
    let (repository, tag) = match last_component.rsplit_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], Some(tag)),
        None => (name, None),
    };
    let parses = !repository.is_empty()
        && !repository
            .chars()
            .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
        && tag.is_none_or(|tag| !tag.is_empty())
        && digest.is_none_or(|digest| !digest.is_empty());
    if !parses {
        return false;
    }
    match tag {
        Some(tag) => tag == "latest",
        None => digest.is_none(),
    }
}

fn field_selector(field: &mut ObjectFieldSelector) {
    set_if_empty(&mut field.api_version, "v1");
}

/// `Divisor` is a plain `resource.Quantity` in Kubernetes: an unset one
/// reads back as `"0"`.
fn resource_selector(resource: &mut ResourceFieldSelector) {
    resource
        .divisor
        .get_or_insert_with(|| Quantity("0".to_owned()));
}

fn probe_defaults(probe: &mut Probe) {
    for (field, default) in [
        (&mut probe.timeout_seconds, 1),
        (&mut probe.period_seconds, 10),
        (&mut probe.success_threshold, 1),
        (&mut probe.failure_threshold, 3),
    ] {
        if *field == 0 {
            *field = default;
        }
    }
    if let Some(action) = &mut probe.http_get {
        http_get_defaults(action);
    }
}

fn http_get_defaults(action: &mut HttpGetAction) {
    set_if_empty(&mut action.path, "/");
    set_if_empty(&mut action.scheme, "HTTP");
}

fn volume_defaults(volume: &mut Volume) {
    if volume.sources().is_empty() {
        volume.empty_dir = Some(Default::default());
    }
    if let Some(host_path) = &mut volume.host_path {
        host_path.type_.get_or_insert_with(String::new);
    }
    if let Some(secret) = &mut volume.secret {
        secret.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(config_map) = &mut volume.config_map {
        config_map.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(downward) = &mut volume.downward_api {
        downward.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for item in &mut downward.items {
            if let Some(field) = &mut item.field_ref {
                field_selector(field);
            }
            if let Some(resource) = &mut item.resource_field_ref {
                resource_selector(resource);
            }
        }
    }
    if let Some(projected) = &mut volume.projected {
        projected.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for source in &mut projected.sources {
            if let Some(token) = &mut source.service_account_token {
                token.expiration_seconds.get_or_insert(3600);
            }
            if let Some(downward) = &mut source.downward_api {
                for item in &mut downward.items {
                    if let Some(field) = &mut item.field_ref {
                        field_selector(field);
                    }
                    if let Some(resource) = &mut item.resource_field_ref {
                        resource_selector(resource);
                    }
                }
            }
        }
    }
}

fn replica_set(rs: &mut ReplicaSet) {
    rs.spec.replicas.get_or_insert(1);
    template(&mut rs.spec.template);
}

fn deployment(d: &mut Deployment) {
    let spec = &mut d.spec;
    spec.replicas.get_or_insert(1);
    let strategy = &mut spec.strategy;
    set_if_empty(&mut strategy.type_, "RollingUpdate");
    if strategy.type_ == "RollingUpdate" {
        let rolling = strategy.rolling_update.get_or_insert_with(Default::default);
        rolling
            .max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".to_owned()));
        rolling
            .max_surge
            .get_or_insert_with(|| IntOrString::String("25%".to_owned()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    template(&mut spec.template);
}

fn daemon_set(ds: &mut DaemonSet) {
    let spec = &mut ds.spec;
    let strategy = &mut spec.update_strategy;
    set_if_empty(&mut strategy.type_, "RollingUpdate");
    if strategy.type_ == "RollingUpdate" {
        let rolling = strategy.rolling_update.get_or_insert_with(Default::default);
        rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
        rolling.max_surge.get_or_insert(IntOrString::Int(0));
    }
    spec.revision_history_limit.get_or_insert(10);
    template(&mut spec.template);
}

fn job_defaults(job: &mut Job) {
    let spec = &mut job.spec;
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(6);
    if job.metadata.labels.is_empty() && !spec.template.metadata.labels.is_empty() {
        job.metadata.labels = spec.template.metadata.labels.clone();
    }
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".to_owned());
    spec.suspend.get_or_insert(false);
    spec.manual_selector.get_or_insert(false);
    template(&mut spec.template);
}

fn service(svc: &mut Service) {
    let spec = &mut svc.spec;
    set_if_empty(&mut spec.session_affinity, "None");
    match spec.session_affinity.as_str() {
        "None" => spec.session_affinity_config = None,
        "ClientIP" => {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|config| config.client_ip.as_ref())
                .is_some_and(|client| client.timeout_seconds.is_some());
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIpConfig {
                        timeout_seconds: Some(DEFAULT_CLIENT_IP_AFFINITY_SECONDS),
                    }),
                });
            }
        }
        _ => {}
    }
    set_if_empty(&mut spec.type_, "ClusterIP");
    for port in &mut spec.ports {
        set_if_empty(&mut port.protocol, "TCP");
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(n)) => *n == 0,
            Some(IntOrString::String(name)) => name.is_empty(),
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    let kind = spec.type_.as_str();
    let externally_accessible = kind == "LoadBalancer"
        || kind == "NodePort"
        || (kind == "ClusterIP" && !spec.external_ips.is_empty());
    if externally_accessible {
        set_if_empty(&mut spec.external_traffic_policy, "Cluster");
    }
    if matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer") {
        spec.internal_traffic_policy
            .get_or_insert_with(|| "Cluster".to_owned());
    }
    if kind == "LoadBalancer" {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
        for ingress in &mut svc.status.load_balancer.ingress {
            if !ingress.ip.is_empty() {
                ingress.ip_mode.get_or_insert_with(|| "VIP".to_owned());
            }
        }
    }
    if kind != "ExternalName" {
        // The Service registry's allocation: the singular field is the
        // first of the plural one, and a single-stack cluster gets one family.
        if spec.cluster_ips.is_empty() && !spec.cluster_ip.is_empty() {
            spec.cluster_ips = vec![spec.cluster_ip.clone()];
        }
        spec.ip_family_policy
            .get_or_insert_with(|| "SingleStack".to_owned());
        if spec.ip_families.is_empty() {
            spec.ip_families = spec
                .cluster_ips
                .iter()
                .filter_map(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| if ip.is_ipv4() { "IPv4" } else { "IPv6" }.to_owned())
                .collect();
        }
    }
}

fn endpoints(ep: &mut Endpoints) {
    for subset in &mut ep.subsets {
        for port in &mut subset.ports {
            set_if_empty(&mut port.protocol, "TCP");
        }
    }
}

fn secret_defaults(secret: &mut Secret) {
    secret.merge_string_data();
    set_if_empty(&mut secret.type_, "Opaque");
}

fn role_binding(role_ref: &mut RoleRef, subjects: &mut [Subject]) {
    set_if_empty(&mut role_ref.api_group, RBAC_GROUP);
    for subject in subjects {
        if subject.api_group.is_empty() && matches!(subject.kind.as_str(), "User" | "Group") {
            subject.api_group = RBAC_GROUP.to_owned();
        }
    }
}

fn set_if_empty(field: &mut String, default: &str) {
    if field.is_empty() {
        *field = default.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn decode(value: Value) -> Object {
        super::super::decode_test_object(value)
    }

    fn defaulted(value: Value) -> Value {
        let mut object = decode(value);
        apply_defaults(&mut object);
        object.to_value()
    }

    /// What every container gets when it has nothing but a name and an image.
    fn container(name: &str, image: &str, pull: &str) -> Value {
        json!({
            "name": name, "image": image, "resources": {},
            "imagePullPolicy": pull,
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"
        })
    }

    /// The pod spec defaults around `containers`.
    fn spec(containers: Value) -> Value {
        json!({
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler"
        })
    }

    fn template_of(labels: Value, containers: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": spec(containers)})
    }

    #[test]
    fn minimal_manifests_default_like_kubernetes() {
        let web = json!({"name": "web", "image": "nginx:1.27"});
        let selector = json!({"matchLabels": {"app": "web"}});
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "pod",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": [web]}}),
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {
                           "containers": [container("web", "nginx:1.27", "IfNotPresent")],
                           "restartPolicy": "Always",
                           "terminationGracePeriodSeconds": 30,
                           "dnsPolicy": "ClusterFirst",
                           "securityContext": {},
                           "schedulerName": "default-scheduler",
                           "enableServiceLinks": true
                       },
                       "status": {}}),
            ),
            (
                "deployment",
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                       "spec": {"selector": selector,
                                "template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": [web]}}}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                       "spec": {
                           "replicas": 1,
                           "selector": selector,
                           "template": template_of(json!({"app": "web"}),
                                json!([container("web", "nginx:1.27", "IfNotPresent")])),
                           "strategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                           "revisionHistoryLimit": 10,
                           "progressDeadlineSeconds": 600
                       },
                       "status": {}}),
            ),
            (
                "replicaset",
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
                       "spec": {"selector": selector,
                                "template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": [web]}}}}),
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
                       "spec": {
                           "replicas": 1,
                           "selector": selector,
                           "template": template_of(json!({"app": "web"}),
                                json!([container("web", "nginx:1.27", "IfNotPresent")]))
                       },
                       "status": {"replicas": 0}}),
            ),
            (
                "daemonset",
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
                       "spec": {"selector": selector,
                                "template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": [web]}}}}),
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
                       "spec": {
                           "selector": selector,
                           "template": template_of(json!({"app": "web"}),
                                json!([container("web", "nginx:1.27", "IfNotPresent")])),
                           "updateStrategy": {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                           "revisionHistoryLimit": 10
                       },
                       "status": {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                  "desiredNumberScheduled": 0, "numberReady": 0}}),
            ),
            (
                "job",
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
                       "spec": {"template": {"metadata": {"labels": {"app": "pi"}},
                                             "spec": {"containers": [{"name": "pi", "image": "perl"}],
                                                      "restartPolicy": "Never"}}}}),
                json!({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": "pi", "labels": {"app": "pi"}},
                       "spec": {
                           "parallelism": 1,
                           "completions": 1,
                           "backoffLimit": 6,
                           "manualSelector": false,
                           "template": {"metadata": {"labels": {"app": "pi"}},
                                        "spec": {
                                            "containers": [container("pi", "perl", "Always")],
                                            "restartPolicy": "Never",
                                            "terminationGracePeriodSeconds": 30,
                                            "dnsPolicy": "ClusterFirst",
                                            "securityContext": {},
                                            "schedulerName": "default-scheduler"
                                        }},
                           "completionMode": "NonIndexed",
                           "suspend": false
                       },
                       "status": {}}),
            ),
            (
                "service",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                       "spec": {
                           "type": "ClusterIP",
                           "selector": {"app": "web"},
                           "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80}],
                           "sessionAffinity": "None",
                           "internalTrafficPolicy": "Cluster",
                           "ipFamilyPolicy": "SingleStack"
                       },
                       "status": {"loadBalancer": {}}}),
            ),
            (
                "secret",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                       "stringData": {"password": "hunter2"}}),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                       "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"}),
            ),
            (
                "namespace",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edge"}}),
                json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "edge", "labels": {"kubernetes.io/metadata.name": "edge"}},
                       "spec": {}, "status": {"phase": "Active"}}),
            ),
            (
                "endpoints",
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                       "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                       "subsets": [{"addresses": [{"ip": "10.0.0.1"}],
                                    "ports": [{"port": 80, "protocol": "TCP"}]}]}),
            ),
            (
                "rolebinding",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "b"},
                       "subjects": [{"kind": "User", "name": "ann"},
                                    {"kind": "Group", "name": "ops"},
                                    {"kind": "ServiceAccount", "name": "default", "namespace": "x"}],
                       "roleRef": {"kind": "Role", "name": "reader"}}),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "b"},
                       "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "ann"},
                                    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "ops"},
                                    {"kind": "ServiceAccount", "name": "default", "namespace": "x"}],
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}}),
            ),
            (
                "configmap has no defaults",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                       "data": {"k": "v"}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                       "data": {"k": "v"}}),
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(defaulted(input), expected, "{name}");
        }
    }

    #[test]
    fn pod_spec_parts_get_their_defaults() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {
                "hostNetwork": true,
                "containers": [{
                    "name": "c", "image": "registry.local/gw@sha256:abc",
                    "ports": [{"containerPort": 8080}],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    "env": [
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}
                    ],
                    "livenessProbe": {"httpGet": {"port": 8080}},
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 5},
                    "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/stop"}}}
                }],
                "volumes": [
                    {"name": "scratch"},
                    {"name": "dev", "hostPath": {"path": "/dev/gpiomem"}},
                    {"name": "conf", "configMap": {"name": "conf"}},
                    {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 256}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"name": "token", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}}]}}
                ]
            }
        });
        let out = defaulted(pod);
        let c = &out["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            c["ports"][0],
            json!({"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"})
        );
        assert_eq!(
            c["resources"],
            json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "500m", "memory": "64Mi"}})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["env"][1]["valueFrom"]["resourceFieldRef"]["divisor"], "0");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"},
                   "timeoutSeconds": 1, "periodSeconds": 10,
                   "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        assert_eq!(
            c["lifecycle"]["preStop"]["httpGet"],
            json!({"path": "/stop", "port": 8080, "scheme": "HTTP"})
        );
        let volumes = &out["spec"]["volumes"];
        assert_eq!(volumes[0], json!({"name": "scratch", "emptyDir": {}}));
        assert_eq!(
            volumes[1]["hostPath"],
            json!({"path": "/dev/gpiomem", "type": ""})
        );
        assert_eq!(volumes[2]["configMap"]["defaultMode"], 420);
        assert_eq!(volumes[3]["secret"]["defaultMode"], 256);
        assert_eq!(volumes[4]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(
            volumes[4]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(volumes[5]["projected"]["defaultMode"], 420);
        assert_eq!(
            volumes[5]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3600
        );
    }

    #[test]
    fn pod_only_defaults_stay_off_templates() {
        let out = defaulted(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {
                "hostNetwork": true,
                "containers": [{"name": "c", "image": "x:1",
                                "ports": [{"containerPort": 80}],
                                "resources": {"limits": {"cpu": "1"}}}]}}}
        }));
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec.get("enableServiceLinks"), None);
        assert_eq!(spec["containers"][0]["ports"][0].get("hostPort"), None);
        assert_eq!(spec["containers"][0]["resources"].get("requests"), None);
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("registry.local:5000/team/nginx", "Always"),
            ("registry.local:5000/team/nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("registry.local:5000/nginx:1.27", "IfNotPresent"),
            ("nginx@sha256:0123", "IfNotPresent"),
            ("nginx:latest@sha256:0123", "Always"),
            ("", "IfNotPresent"),
            ("Nginx", "IfNotPresent"),
            ("nginx:", "IfNotPresent"),
        ] {
            let mut c = Container {
                image: image.to_owned(),
                ..Container::default()
            };
            container_defaults(&mut c);
            assert_eq!(c.image_pull_policy, policy, "{image:?}");
        }
        let mut c = Container {
            image: "nginx".to_owned(),
            image_pull_policy: "Never".to_owned(),
            ..Container::default()
        };
        container_defaults(&mut c);
        assert_eq!(c.image_pull_policy, "Never", "an explicit policy is kept");
    }

    #[test]
    fn service_defaults_depend_on_type_and_affinity() {
        let node_port = defaulted(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.7",
                     "ports": [{"port": 80, "targetPort": "http"}],
                     "sessionAffinity": "ClientIP"}
        }));
        let spec = &node_port["spec"];
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ports"][0]["targetPort"], "http");
        assert_eq!(
            spec["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        assert_eq!(spec["clusterIPs"], json!(["10.96.0.7"]));
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));

        let lb = defaulted(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": 0}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example"}]}}
        }));
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["ports"][0]["targetPort"], 443);
        assert_eq!(
            lb["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "192.0.2.1", "ipMode": "VIP"}, {"hostname": "lb.example"}])
        );

        let external = defaulted(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "ExternalName", "externalName": "db.example",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}
        }));
        assert_eq!(
            external["spec"],
            json!({"type": "ExternalName", "externalName": "db.example", "sessionAffinity": "None"})
        );
    }

    #[test]
    fn node_defaults_fill_allocatable_and_pod_cidrs() {
        let out = defaulted(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "pi-1"},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"capacity": {"cpu": "4", "memory": "4Gi"}}
        }));
        assert_eq!(out["spec"]["podCIDRs"], json!(["10.244.1.0/24"]));
        assert_eq!(
            out["status"]["allocatable"],
            json!({"cpu": "4", "memory": "4Gi"})
        );
        let out = defaulted(json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "pi-1"},
            "spec": {"podCIDRs": ["10.244.2.0/24", "fd00::/64"]},
            "status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3500m"}}
        }));
        assert_eq!(out["spec"]["podCIDR"], "10.244.2.0/24");
        assert_eq!(out["status"]["allocatable"], json!({"cpu": "3500m"}));
    }

    #[test]
    fn explicit_values_are_never_overwritten() {
        let input = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 0, "revisionHistoryLimit": 2, "progressDeadlineSeconds": 60,
                     "strategy": {"type": "Recreate"},
                     "template": {"spec": {"restartPolicy": "Always", "dnsPolicy": "Default",
                                           "terminationGracePeriodSeconds": 5,
                                           "schedulerName": "other",
                                           "containers": [{"name": "c", "image": "x:1",
                                                           "terminationMessagePolicy": "FallbackToLogsOnError"}]}}}
        });
        let out = defaulted(input);
        let spec = &out["spec"];
        assert_eq!(spec["replicas"], 0);
        assert_eq!(spec["revisionHistoryLimit"], 2);
        assert_eq!(spec["progressDeadlineSeconds"], 60);
        assert_eq!(spec["strategy"], json!({"type": "Recreate"}));
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["dnsPolicy"], "Default");
        assert_eq!(pod["terminationGracePeriodSeconds"], 5);
        assert_eq!(pod["schedulerName"], "other");
        assert_eq!(
            pod["containers"][0]["terminationMessagePolicy"],
            "FallbackToLogsOnError"
        );
    }

    #[test]
    fn job_parallelism_alone_leaves_completions_unset() {
        let out = defaulted(json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "labels": {"own": "x"}},
            "spec": {"parallelism": 3, "template": {"metadata": {"labels": {"app": "j"}},
                     "spec": {"containers": [{"name": "c", "image": "x:1"}], "restartPolicy": "Never"}}}
        }));
        assert_eq!(out["spec"]["parallelism"], 3);
        assert_eq!(out["spec"].get("completions"), None);
        assert_eq!(
            out["metadata"]["labels"],
            json!({"own": "x"}),
            "labels of their own are kept"
        );
    }

    #[test]
    fn defaulting_is_idempotent() {
        let inputs = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"memory": "1Gi"}},
                                            "readinessProbe": {"httpGet": {"port": 80}}}],
                            "volumes": [{"name": "v"}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                   "spec": {"ports": [{"port": 80}], "sessionAffinity": "ClientIP", "clusterIP": "10.96.0.9"}}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                   "spec": {"template": {"metadata": {"labels": {"a": "b"}},
                            "spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
                   "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        ];
        for input in inputs {
            let mut object = decode(input.clone());
            apply_defaults(&mut object);
            let once = object.clone();
            apply_defaults(&mut object);
            assert_eq!(object, once, "{input}");
        }
    }
}
