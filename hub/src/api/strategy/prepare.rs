//! What the server owns: the preparation of an object before a create, an
//! update, a status update or a namespace finalize, as `rest.BeforeCreate`
//! and `rest.BeforeUpdate` (`k8s.io/apiserver/pkg/registry/rest/create.go`,
//! `update.go`) and each kind's `PrepareForCreate` / `PrepareForUpdate` in
//! `pkg/registry/<group>/<kind>/strategy.go` do; for Services also the
//! Service registry's `patchAllocatedValues` and `normalizeClusterIPs`
//! (`pkg/registry/core/service/storage/storage.go`).

use std::collections::BTreeMap;

use flotilla_shared::model::{
    DaemonSet, Job, LabelSelector, Namespace, Object, ObjectMeta, PodCondition, Service, Time,
    condition_status, pod_condition, pod_phase,
};

use super::defaults::apply_defaults;
use super::has_status_subresource;
use super::qos::pod_qos_class;

/// The annotation apps/v1 keeps a DaemonSet's template generation in.
pub const DAEMON_SET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";
/// The finalizer every Namespace is created with (`FinalizerKubernetes`).
pub const NAMESPACE_FINALIZER: &str = "kubernetes";
/// Job template labels and selector key generated from the Job's name and uid.
pub const JOB_NAME_LABELS: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];
pub const CONTROLLER_UID_LABELS: [&str; 2] =
    ["controller-uid", "batch.kubernetes.io/controller-uid"];
const CONTROLLER_UID_SELECTOR: &str = "batch.kubernetes.io/controller-uid";

/// The server-chosen values of a create: the new object's uid and the
/// time of the request (`metadata.creationTimestamp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateContext {
    pub uid: String,
    pub now: Time,
}

/// Kinds whose spec changes are counted in `metadata.generation`.
fn has_generation(object: &Object) -> bool {
    matches!(
        object,
        Object::Deployment(_) | Object::ReplicaSet(_) | Object::DaemonSet(_) | Object::Job(_)
    )
}

/// Prepares a new object: sets the uid and creation time from `ctx`,
/// clears what a client may not set (resourceVersion, deletion fields,
/// the status that the server or a controller writes), starts the
/// generation at 1 for workloads, generates a Job's selector, applies the
/// defaults, and gives a Pod its initial status (`Pending`, its QoS class,
/// `PodScheduled=False` while scheduling gates remain). A Node keeps the
/// status its agent registers it with.
///
/// A Job's generated `job-name` labels take `metadata.name`: give a
/// `generateName` object its name before calling this.
pub fn prepare_for_create(object: &mut Object, ctx: &CreateContext) {
    let generation = i64::from(has_generation(object));
    let meta = object.metadata_mut();
    meta.uid = ctx.uid.clone();
    meta.creation_timestamp = Some(ctx.now.clone());
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.resource_version.clear();
    meta.generation = generation;
    match object {
        Object::Pod(pod) => pod.status = Default::default(),
        Object::Deployment(d) => d.status = Default::default(),
        Object::ReplicaSet(rs) => rs.status = Default::default(),
        Object::DaemonSet(ds) => {
            ds.status = Default::default();
            let generation = template_generation(ds).max(1);
            set_template_generation(ds, generation);
        }
        Object::Job(job) => {
            job.status = Default::default();
            if job.spec.manual_selector != Some(true) {
                generate_job_selector(job);
            }
        }
        Object::Service(svc) => svc.status = Default::default(),
        Object::Namespace(ns) => {
            ns.status = Default::default();
            if !ns.spec.finalizers.iter().any(|f| f == NAMESPACE_FINALIZER) {
                ns.spec.finalizers.push(NAMESPACE_FINALIZER.to_owned());
            }
        }
        _ => {}
    }
    apply_defaults(object);
    if let Object::Pod(pod) = object {
        pod.status.phase = pod_phase::PENDING.to_owned();
        pod.status.qos_class = pod_qos_class(&pod.spec).to_owned();
        if !pod.spec.scheduling_gates.is_empty() {
            pod.status.conditions.push(PodCondition {
                type_: pod_condition::POD_SCHEDULED.to_owned(),
                status: condition_status::FALSE.to_owned(),
                last_transition_time: Some(ctx.now.clone()),
                reason: "SchedulingGated".to_owned(),
                message: "Scheduling is blocked due to non-empty scheduling gates".to_owned(),
                ..PodCondition::default()
            });
        }
    }
}

/// The Job strategy's `generateSelector`: template labels from the Job's
/// name and uid (those the user set are kept) and a selector on the uid.
fn generate_job_selector(job: &mut Job) {
    let labels = &mut job.spec.template.metadata.labels;
    for key in JOB_NAME_LABELS {
        labels
            .entry(key.to_owned())
            .or_insert_with(|| job.metadata.name.clone());
    }
    for key in CONTROLLER_UID_LABELS {
        labels
            .entry(key.to_owned())
            .or_insert_with(|| job.metadata.uid.clone());
    }
    job.spec
        .selector
        .get_or_insert_with(LabelSelector::default)
        .match_labels
        .entry(CONTROLLER_UID_SELECTOR.to_owned())
        .or_insert_with(|| job.metadata.uid.clone());
}

/// Prepares an update of the main resource: applies the defaults to `new`,
/// keeps the system fields of `old` (generation, uid when `new` has none,
/// creation time, a deletion already under way), keeps the stored status
/// of kinds with a status subresource, and counts a spec change in the
/// generation (for a Deployment an annotation change too, as annotations
/// are copied to its ReplicaSets). A Namespace's `spec.finalizers` change
/// only through [`prepare_for_namespace_finalize`]. A Service keeps the
/// addresses and node ports the server allocated when the client left them out.
pub fn prepare_for_update(old: &Object, new: &mut Object) {
    if let (Object::Service(old), Object::Service(new)) = (old, &mut *new) {
        patch_allocated_values(old, new);
        normalize_cluster_ips(old, new);
    }
    apply_defaults(new);
    keep_system_fields(old.metadata(), new.metadata_mut());
    match (old, new) {
        (Object::Pod(old), Object::Pod(new)) => new.status = old.status.clone(),
        (Object::Node(old), Object::Node(new)) => new.status = old.status.clone(),
        (Object::Namespace(old), Object::Namespace(new)) => {
            new.status = old.status.clone();
            new.spec.finalizers = old.spec.finalizers.clone();
        }
        (Object::Service(old), Object::Service(new)) => new.status = old.status.clone(),
        (Object::Deployment(old), Object::Deployment(new)) => {
            new.status = old.status.clone();
            if new.spec != old.spec || new.metadata.annotations != old.metadata.annotations {
                new.metadata.generation = old.metadata.generation + 1;
            }
        }
        (Object::ReplicaSet(old), Object::ReplicaSet(new)) => {
            new.status = old.status.clone();
            if new.spec != old.spec {
                new.metadata.generation = old.metadata.generation + 1;
            }
        }
        (Object::DaemonSet(old), Object::DaemonSet(new)) => {
            new.status = old.status.clone();
            let mut generation = template_generation(old);
            if new.spec.template != old.spec.template {
                generation += 1;
            }
            set_template_generation(new, generation);
            if new.spec != old.spec {
                new.metadata.generation = old.metadata.generation + 1;
            }
        }
        (Object::Job(old), Object::Job(new)) => {
            new.status = old.status.clone();
            if new.spec != old.spec {
                new.metadata.generation = old.metadata.generation + 1;
            }
        }
        _ => {}
    }
}

/// Prepares an update of the `status` subresource: only the status may
/// change. The spec and the metadata a status writer may not touch
/// (`ResetObjectMetaForStatus`: labels, annotations, finalizers, owner
/// references, deletion timestamp, generation) come from `old`. A Pod
/// keeps its QoS class when the writer left it out. For a kind without a
/// status subresource the result is `old` itself: such a status update
/// changes nothing.
pub fn prepare_for_status_update(old: &Object, new: &mut Object) {
    apply_defaults(new);
    if old.kind() != new.kind() {
        return;
    }
    if !has_status_subresource(old.kind()) {
        *new = old.clone();
        return;
    }
    // Kubernetes' Deployment status strategy resets only the spec and the
    // labels: the controller records `deployment.kubernetes.io/revision`
    // together with the status.
    let annotations =
        matches!(new, Object::Deployment(_)).then(|| new.metadata().annotations.clone());
    reset_meta_for_status(old.metadata(), new.metadata_mut());
    if let Some(annotations) = annotations {
        new.metadata_mut().annotations = annotations;
    }
    match (old, new) {
        (Object::Pod(old), Object::Pod(new)) => {
            new.spec = old.spec.clone();
            if new.status.qos_class.is_empty() {
                new.status.qos_class = old.status.qos_class.clone();
            }
        }
        (Object::Node(old), Object::Node(new)) => new.spec = old.spec.clone(),
        (Object::Namespace(old), Object::Namespace(new)) => new.spec = old.spec.clone(),
        (Object::Service(old), Object::Service(new)) => new.spec = old.spec.clone(),
        (Object::Deployment(old), Object::Deployment(new)) => new.spec = old.spec.clone(),
        (Object::ReplicaSet(old), Object::ReplicaSet(new)) => new.spec = old.spec.clone(),
        (Object::DaemonSet(old), Object::DaemonSet(new)) => new.spec = old.spec.clone(),
        (Object::Job(old), Object::Job(new)) => new.spec = old.spec.clone(),
        _ => {}
    }
}

/// Prepares an update of `namespaces/{name}/finalize`: only
/// `spec.finalizers` may change (the namespace controller removes
/// `kubernetes` from it once the namespace is empty).
pub fn prepare_for_namespace_finalize(old: &Namespace, new: &mut Namespace) {
    reset_meta_for_status(&old.metadata, &mut new.metadata);
    new.status = old.status.clone();
}

/// What `rest.BeforeUpdate` carries over from the stored object.
fn keep_system_fields(old: &ObjectMeta, new: &mut ObjectMeta) {
    new.generation = old.generation;
    if new.uid.is_empty() {
        new.uid = old.uid.clone();
    }
    if old.creation_timestamp.is_some() {
        new.creation_timestamp = old.creation_timestamp.clone();
    }
    if old.deletion_timestamp.is_some() {
        new.deletion_timestamp = old.deletion_timestamp.clone();
    }
    if new.deletion_grace_period_seconds.is_none() {
        new.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
    }
}

/// [`keep_system_fields`] plus `metav1.ResetObjectMetaForStatus`.
fn reset_meta_for_status(old: &ObjectMeta, new: &mut ObjectMeta) {
    keep_system_fields(old, new);
    new.deletion_timestamp = old.deletion_timestamp.clone();
    new.labels = old.labels.clone();
    new.annotations = old.annotations.clone();
    new.finalizers = old.finalizers.clone();
    new.owner_references = old.owner_references.clone();
}

/// The template generation apps/v1 keeps in an annotation; 0 when absent.
fn template_generation(ds: &DaemonSet) -> i64 {
    ds.metadata
        .annotations
        .get(DAEMON_SET_TEMPLATE_GENERATION)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(ds: &mut DaemonSet, generation: i64) {
    let annotations = &mut ds.metadata.annotations;
    if generation == 0 {
        annotations.remove(DAEMON_SET_TEMPLATE_GENERATION);
    } else {
        annotations.insert(
            DAEMON_SET_TEMPLATE_GENERATION.to_owned(),
            generation.to_string(),
        );
    }
}

fn needs_cluster_ip(svc: &Service) -> bool {
    svc.spec.type_ != "ExternalName"
}

fn needs_node_port(svc: &Service) -> bool {
    matches!(svc.spec.type_.as_str(), "NodePort" | "LoadBalancer")
}

fn needs_health_check_node_port(svc: &Service) -> bool {
    svc.spec.type_ == "LoadBalancer" && svc.spec.external_traffic_policy == "Local"
}

/// `patchAllocatedValues`: a client that resubmits the manifest it created
/// the Service from (without the allocated cluster IP, node ports, IP
/// families) keeps what was allocated.
fn patch_allocated_values(old: &Service, new: &mut Service) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        let (old_spec, spec) = (&old.spec, &mut new.spec);
        if spec.cluster_ip.is_empty() {
            spec.cluster_ip = old_spec.cluster_ip.clone();
        }
        if spec.cluster_ips.is_empty() && !old_spec.cluster_ips.is_empty() {
            spec.cluster_ips = old_spec.cluster_ips.clone();
        }
        if spec.ip_families.is_empty() {
            spec.ip_families = old_spec.ip_families.clone();
        }
        if spec.ip_family_policy.is_none() {
            spec.ip_family_policy = old_spec.ip_family_policy.clone();
        }
    }
    if needs_node_port(old) && needs_node_port(new) {
        let used_by = |svc: &Service| -> Vec<i32> {
            svc.spec
                .ports
                .iter()
                .map(|p| p.node_port)
                .filter(|&n| n != 0)
                .collect()
        };
        let new_used = used_by(new);
        let used: Vec<i32> = used_by(old)
            .into_iter()
            .filter(|n| new_used.contains(n))
            .collect();
        let by_name: BTreeMap<&str, i32> = old
            .spec
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.node_port))
            .collect();
        for port in &mut new.spec.ports {
            if port.node_port == 0
                && let Some(&old_port) = by_name.get(port.name.as_str())
                && !used.contains(&old_port)
            {
                port.node_port = old_port;
            }
        }
    }
    if needs_health_check_node_port(old)
        && needs_health_check_node_port(new)
        && new.spec.health_check_node_port == 0
    {
        new.spec.health_check_node_port = old.spec.health_check_node_port;
    }
}

/// `normalizeClusterIPs` for an update: an old client that only knows
/// `clusterIP` changes the plural field with it.
fn normalize_cluster_ips(old: &Service, new: &mut Service) {
    let (old_spec, spec) = (&old.spec, &mut new.spec);
    if !old_spec.cluster_ips.is_empty()
        && spec.cluster_ips.is_empty()
        && old_spec.cluster_ip == spec.cluster_ip
    {
        spec.cluster_ips = old_spec.cluster_ips.clone();
    }
    if old_spec.cluster_ip != spec.cluster_ip
        && !old_spec.cluster_ip.is_empty()
        && spec.cluster_ips == old_spec.cluster_ips
    {
        if spec.cluster_ip.is_empty() {
            spec.cluster_ips.clear();
        } else {
            spec.cluster_ips = vec![spec.cluster_ip.clone()];
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn decode(value: Value) -> Object {
        super::super::decode_test_object(value)
    }

    fn ctx() -> CreateContext {
        CreateContext {
            uid: "6f1d0c2a-0000-4000-8000-000000000001".to_owned(),
            now: Time("2026-11-21T14:16:28Z".to_owned()),
        }
    }

    fn created(value: Value) -> Object {
        let mut object = decode(value);
        prepare_for_create(&mut object, &ctx());
        object
    }

    fn deployment(replicas: i32) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
    }

    #[test]
    fn create_sets_system_fields_and_clears_what_clients_may_not_set() {
        let mut input = deployment(3);
        input["metadata"]["uid"] = json!("client-chosen");
        input["metadata"]["resourceVersion"] = json!("42");
        input["metadata"]["generation"] = json!(7);
        input["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
        input["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        input["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        input["status"] = json!({"replicas": 3, "readyReplicas": 3, "observedGeneration": 7});
        let value = created(input).to_value();
        assert_eq!(
            value["metadata"],
            json!({"name": "web", "namespace": "default", "labels": {"app": "web"},
                   "uid": "6f1d0c2a-0000-4000-8000-000000000001",
                   "generation": 1,
                   "creationTimestamp": "2026-11-21T14:16:28Z"})
        );
        assert_eq!(value["status"], json!({}));
        assert_eq!(
            value["spec"]["strategy"]["type"], "RollingUpdate",
            "defaults applied"
        );
    }

    #[test]
    fn create_starts_the_generation_only_for_workloads() {
        for (input, generation) in [
            (deployment(1), json!(1)),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "c", "generation": 5}}),
                Value::Null,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": [{"name": "c", "image": "x:1"}]}}),
                Value::Null,
            ),
        ] {
            let value = created(input.clone()).to_value();
            assert_eq!(value["metadata"]["generation"], generation, "{input}");
        }
    }

    #[test]
    fn create_gives_a_pod_its_initial_status() {
        let cases = [
            (
                json!([{"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
                "Guaranteed",
            ),
            (
                json!([{"name": "c", "image": "x:1", "resources": {"requests": {"cpu": "100m"}}}]),
                "Burstable",
            ),
            (json!([{"name": "c", "image": "x:1"}]), "BestEffort"),
        ];
        for (containers, qos) in cases {
            let value = created(json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": containers, "nodeName": "pi-1"},
                "status": {"phase": "Running", "podIP": "10.0.0.9"}
            }))
            .to_value();
            assert_eq!(
                value["status"],
                json!({"phase": "Pending", "qosClass": qos}),
                "{containers}"
            );
        }
        let gated = created(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x:1"}],
                     "schedulingGates": [{"name": "example.com/wait"}]}
        }))
        .to_value();
        assert_eq!(
            gated["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "False",
                    "lastTransitionTime": "2026-11-21T14:16:28Z",
                    "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates"}])
        );
    }

    #[test]
    fn create_generates_a_job_selector_from_its_uid() {
        let value = created(json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5"}],
                                           "restartPolicy": "Never"}}}
        }))
        .to_value();
        let uid = "6f1d0c2a-0000-4000-8000-000000000001";
        let labels = json!({
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": "pi",
            "controller-uid": uid,
            "job-name": "pi"
        });
        assert_eq!(
            value["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        );
        assert_eq!(value["spec"]["template"]["metadata"]["labels"], labels);
        assert_eq!(
            value["metadata"]["labels"], labels,
            "labels copied from the template"
        );
        assert_eq!(value["spec"]["manualSelector"], false);

        let manual = created(json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"manualSelector": true, "selector": {"matchLabels": {"run": "pi"}},
                     "template": {"metadata": {"labels": {"run": "pi"}},
                                  "spec": {"containers": [{"name": "pi", "image": "perl:5"}],
                                           "restartPolicy": "Never"}}}
        }))
        .to_value();
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"run": "pi"}})
        );
        assert_eq!(
            manual["spec"]["template"]["metadata"]["labels"],
            json!({"run": "pi"})
        );
    }

    #[test]
    fn create_prepares_namespaces_daemon_sets_and_nodes() {
        let ns = created(json!({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": "edge"}, "status": {"phase": "Terminating"}}))
        .to_value();
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(ns["status"], json!({"phase": "Active"}));
        assert_eq!(
            ns["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name": "edge"})
        );

        let ds = created(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
                                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}))
        .to_value();
        assert_eq!(
            ds["metadata"]["annotations"],
            json!({"deprecated.daemonset.template.generation": "1"})
        );

        let node = created(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "pi-1"},
                                  "status": {"capacity": {"cpu": "4"}}}),
        )
        .to_value();
        assert_eq!(
            node["status"]["capacity"],
            json!({"cpu": "4"}),
            "a node keeps its status"
        );
    }

    fn stored(value: Value) -> Object {
        created(value)
    }

    fn updated(old: &Object, value: Value) -> Object {
        let mut new = decode(value);
        prepare_for_update(old, &mut new);
        new
    }

    fn with_status(mut object: Object) -> Object {
        if let Object::Deployment(d) = &mut object {
            d.status.replicas = 3;
            d.status.observed_generation = 1;
        }
        object
    }

    #[test]
    fn update_keeps_status_and_bumps_the_generation_only_on_spec_change() {
        let old = with_status(stored(deployment(3)));
        let cases = [
            ("same manifest", deployment(3), 1),
            ("spec change", deployment(5), 2),
            (
                "labels only",
                {
                    let mut d = deployment(3);
                    d["metadata"]["labels"]["tier"] = json!("front");
                    d
                },
                1,
            ),
            (
                "annotations of a Deployment",
                {
                    let mut d = deployment(3);
                    d["metadata"]["annotations"] = json!({"note": "x"});
                    d
                },
                2,
            ),
        ];
        for (name, input, generation) in cases {
            let mut input = input;
            input["status"] = json!({"replicas": 99});
            input["metadata"]["uid"] = json!("");
            let new = updated(&old, input).to_value();
            assert_eq!(new["metadata"]["generation"], generation, "{name}");
            assert_eq!(new["status"]["replicas"], 3, "{name}: status kept");
            assert_eq!(
                new["metadata"]["uid"], "6f1d0c2a-0000-4000-8000-000000000001",
                "{name}"
            );
            assert_eq!(
                new["metadata"]["creationTimestamp"], "2026-11-21T14:16:28Z",
                "{name}"
            );
        }
    }

    #[test]
    fn update_generation_rules_per_kind() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                                 "template": {"metadata": {"labels": {"a": "b"}},
                                              "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
        let old = stored(rs.clone());
        let mut annotated = rs.clone();
        annotated["metadata"]["annotations"] = json!({"note": "x"});
        assert_eq!(
            updated(&old, annotated).metadata().generation,
            1,
            "ReplicaSet annotations"
        );
        let mut scaled = rs.clone();
        scaled["spec"]["replicas"] = json!(2);
        assert_eq!(
            updated(&old, scaled).metadata().generation,
            2,
            "ReplicaSet spec"
        );

        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "c", "image": "x:1"}]}});
        let old = stored(pod.clone());
        let mut image = pod.clone();
        image["spec"]["containers"][0]["image"] = json!("x:2");
        let new = updated(&old, image);
        assert_eq!(new.metadata().generation, 0, "pods have no generation");
        let Object::Pod(new) = new else {
            panic!("a pod")
        };
        assert_eq!(new.status.phase, "Pending", "pod status kept");
    }

    #[test]
    fn update_counts_daemon_set_template_generations() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
                        "spec": {"selector": {"matchLabels": {"a": "b"}},
                                 "template": {"metadata": {"labels": {"a": "b"}},
                                              "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
        let old = stored(ds.clone());
        let mut new_image = ds.clone();
        new_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        let new = updated(&old, new_image).to_value();
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(
            new["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
            "2"
        );
        let mut history = ds.clone();
        history["spec"]["revisionHistoryLimit"] = json!(3);
        history["metadata"]["annotations"] =
            json!({"deprecated.daemonset.template.generation": "9"});
        let new = updated(&old, history).to_value();
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(
            new["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "1",
            "the annotation is the server's"
        );
    }

    #[test]
    fn update_keeps_deletion_and_namespace_finalizers() {
        let mut old =
            stored(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "edge"}}));
        old.metadata_mut().deletion_timestamp = Some(Time("2026-11-22T00:00:00Z".to_owned()));
        old.metadata_mut().deletion_grace_period_seconds = Some(0);
        let new = updated(&old, json!({"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "edge", "labels": {"team": "a"}},
                                       "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}))
        .to_value();
        assert_eq!(new["metadata"]["deletionTimestamp"], "2026-11-22T00:00:00Z");
        assert_eq!(new["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(new["metadata"]["labels"]["team"], "a");
        assert_eq!(new["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(new["status"]["phase"], "Active");

        let Object::Namespace(old) = old else {
            panic!("a namespace")
        };
        let mut finalized = old.clone();
        finalized.spec.finalizers.clear();
        finalized
            .metadata
            .labels
            .insert("x".to_owned(), "y".to_owned());
        finalized.status.phase = "Gone".to_owned();
        prepare_for_namespace_finalize(&old, &mut finalized);
        assert!(finalized.spec.finalizers.is_empty());
        assert_eq!(finalized.metadata, old.metadata);
        assert_eq!(finalized.status, old.status);
    }

    #[test]
    fn update_keeps_allocated_service_values_the_client_left_out() {
        let mut old = stored(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                    "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}}),
        );
        if let Object::Service(svc) = &mut old {
            svc.spec.cluster_ip = "10.96.0.20".to_owned();
            svc.spec.cluster_ips = vec!["10.96.0.20".to_owned()];
            svc.spec.ip_families = vec!["IPv4".to_owned()];
            svc.spec.ports[0].node_port = 30080;
        }
        let manifest = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                              "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80}]}});
        let new = updated(&old, manifest.clone());
        assert_eq!(new, old, "resubmitting the manifest changes nothing");

        let mut changed = manifest.clone();
        changed["spec"]["clusterIP"] = json!("10.96.0.99");
        let Object::Service(new) = updated(&old, changed) else {
            panic!("a service")
        };
        assert_eq!(
            new.spec.cluster_ips,
            ["10.96.0.99"],
            "an old client's change moves both fields"
        );
    }

    fn status_updated(old: &Object, value: Value) -> Object {
        let mut new = decode(value);
        prepare_for_status_update(old, &mut new);
        new
    }

    #[test]
    fn status_update_cannot_change_spec_or_metadata() {
        let old = stored(deployment(3));
        let mut input = deployment(7);
        input["metadata"]["labels"] = json!({"app": "other"});
        input["metadata"]["annotations"] = json!({"a": "b"});
        input["metadata"]["finalizers"] = json!(["x/y"]);
        input["metadata"]["generation"] = json!(9);
        input["status"] = json!({"replicas": 3, "readyReplicas": 2, "observedGeneration": 1});
        let new = status_updated(&old, input).to_value();
        let old = old.to_value();
        assert_eq!(new["spec"], old["spec"]);
        let mut metadata = old["metadata"].clone();
        metadata["annotations"] = json!({"a": "b"});
        assert_eq!(
            new["metadata"], metadata,
            "only a Deployment's annotations may change, as in Kubernetes"
        );
        assert_eq!(
            new["status"],
            json!({"replicas": 3, "readyReplicas": 2, "observedGeneration": 1})
        );
    }

    #[test]
    fn pod_status_update_keeps_the_qos_class_when_left_out() {
        let old = stored(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                "spec": {"containers": [{"name": "c", "image": "x:1",
                                                         "resources": {"requests": {"cpu": "1"}}}]}}),
        );
        let new = status_updated(&old, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                              "spec": {"containers": [{"name": "c", "image": "y:1"}]},
                                              "status": {"phase": "Running"}}))
        .to_value();
        assert_eq!(
            new["status"],
            json!({"phase": "Running", "qosClass": "Burstable"})
        );
        assert_eq!(new["spec"]["containers"][0]["image"], "x:1");
    }

    #[test]
    fn status_update_of_a_kind_without_status_changes_nothing() {
        let old = stored(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                "data": {"k": "v"}}),
        );
        let new = status_updated(
            &old,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": "c"}, "data": {"k": "w"}}),
        );
        assert_eq!(new, old);
    }
}
