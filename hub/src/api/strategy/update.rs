//! Validation of an update: everything [`validate`] checks on the new
//! object, plus what an update may not change, with kube-apiserver's
//! wording and paths:
//!
//! - metadata (`ValidateObjectMetaUpdate`, apimachinery
//!   `pkg/api/validation/objectmeta.go`): name, namespace, uid, creation
//!   and deletion fields are immutable, the generation never decreases, no
//!   finalizer is added to an object being deleted;
//! - Pods (`ValidatePodUpdate`, `pkg/apis/core/validation/validation.go`):
//!   only images, `activeDeadlineSeconds` (set or shortened), added
//!   tolerations, removed scheduling gates (and, while gated, added node
//!   selector labels) may change;
//! - Deployments, ReplicaSets, DaemonSets: `spec.selector`
//!   (`pkg/apis/apps/validation`); Jobs: selector, template (except
//!   scheduling directives of a suspended Job that never started),
//!   completions (except with parallelism on an Indexed Job), completion
//!   mode (`pkg/apis/batch/validation`);
//! - Services: allocated cluster IPs and `loadBalancerClass`; ConfigMaps
//!   and Secrets marked `immutable`; a Secret's type; a binding's
//!   `roleRef`; a Node's pod CIDRs and provider ID once set.
//!
//! Call it on the `new` that [`super::prepare_for_update`] (or the status
//! variant) produced: the system fields are then already carried over.

use flotilla_shared::model::{
    Affinity, ConfigMap, Container, Job, LabelSelector, Node, Object, ObjectMeta, Pod, PodSpec,
    RoleRef, Secret, Service, Toleration,
};
use flotilla_shared::validation::{ErrorList, ErrorType, FieldError, Path, validate};
use serde_json::Value;

use super::gofmt;

/// Kubernetes' `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE: &str = "field is immutable";
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";
/// The first line of the error for a forbidden pod spec change.
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Validates `new` as an update of `old`: every error at once, each once.
pub fn validate_update(old: &Object, new: &Object) -> Result<(), ErrorList> {
    let mut errors = ErrorList::new();
    if old.kind() != new.kind() {
        errors.push(FieldError::invalid(
            &Path::new("kind"),
            new.kind(),
            FIELD_IMMUTABLE,
        ));
        return errors.into_result();
    }
    meta_update(old.metadata(), new.metadata(), &mut errors);
    if let Err(found) = validate(new) {
        errors.extend(found);
    }
    match (old, new) {
        (Object::Pod(old), Object::Pod(new)) => pod_update(old, new, &mut errors),
        (Object::Deployment(old), Object::Deployment(new)) => {
            selector_immutable(&old.spec.selector, &new.spec.selector, &mut errors)
        }
        (Object::ReplicaSet(old), Object::ReplicaSet(new)) => {
            selector_immutable(&old.spec.selector, &new.spec.selector, &mut errors)
        }
        (Object::DaemonSet(old), Object::DaemonSet(new)) => {
            selector_immutable(&old.spec.selector, &new.spec.selector, &mut errors)
        }
        (Object::Job(old), Object::Job(new)) => job_update(old, new, &mut errors),
        (Object::Service(old), Object::Service(new)) => service_update(old, new, &mut errors),
        (Object::ConfigMap(old), Object::ConfigMap(new)) => {
            config_map_update(old, new, &mut errors)
        }
        (Object::Secret(old), Object::Secret(new)) => secret_update(old, new, &mut errors),
        (Object::RoleBinding(old), Object::RoleBinding(new)) => {
            role_ref_immutable(&old.role_ref, &new.role_ref, &mut errors)
        }
        (Object::ClusterRoleBinding(old), Object::ClusterRoleBinding(new)) => {
            role_ref_immutable(&old.role_ref, &new.role_ref, &mut errors)
        }
        (Object::Node(old), Object::Node(new)) => node_update(old, new, &mut errors),
        _ => {}
    }
    let mut unique = ErrorList::new();
    for error in errors.0 {
        if !unique.0.contains(&error) {
            unique.push(error);
        }
    }
    unique.into_result()
}

/// `field.Invalid(path, value, "field is immutable")` with the value
/// already rendered as Go renders it.
fn immutable(path: &Path, rendered: String) -> FieldError {
    FieldError::invalid_raw(path, rendered, FIELD_IMMUTABLE)
}

fn meta_update(old: &ObjectMeta, new: &ObjectMeta, errors: &mut ErrorList) {
    let path = Path::new("metadata");
    if old.deletion_timestamp.is_some() {
        let added: Vec<String> = new
            .finalizers
            .iter()
            .filter(|f| !old.finalizers.contains(f))
            .cloned()
            .collect();
        if !added.is_empty() {
            errors.push(FieldError::forbidden(
                &path.child("finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    gofmt::string_slice(&added)
                ),
            ));
        }
    }
    if new.generation < old.generation {
        errors.push(FieldError::invalid_raw(
            &path.child("generation"),
            new.generation,
            "must not be decremented",
        ));
    }
    for (field, old_value, new_value) in [
        ("name", &old.name, &new.name),
        ("namespace", &old.namespace, &new.namespace),
        ("uid", &old.uid, &new.uid),
    ] {
        if old_value != new_value {
            errors.push(immutable(&path.child(field), gofmt::string(new_value)));
        }
    }
    if old.creation_timestamp != new.creation_timestamp {
        errors.push(immutable(
            &path.child("creationTimestamp"),
            gofmt::time(new.creation_timestamp.as_ref()),
        ));
    }
    if old.deletion_timestamp != new.deletion_timestamp {
        errors.push(immutable(
            &path.child("deletionTimestamp"),
            gofmt::time_pointer(new.deletion_timestamp.as_ref()),
        ));
    }
    if old.deletion_grace_period_seconds != new.deletion_grace_period_seconds {
        errors.push(immutable(
            &path.child("deletionGracePeriodSeconds"),
            gofmt::pointer(new.deletion_grace_period_seconds),
        ));
    }
}

fn selector_immutable(
    old: &Option<LabelSelector>,
    new: &Option<LabelSelector>,
    errors: &mut ErrorList,
) {
    if old != new {
        errors.push(immutable(
            &Path::new("spec").child("selector"),
            gofmt::label_selector(new.as_ref()),
        ));
    }
}

fn role_ref_immutable(old: &RoleRef, new: &RoleRef, errors: &mut ErrorList) {
    if old != new {
        errors.push(FieldError::invalid_raw(
            &Path::new("roleRef"),
            gofmt::role_ref(new),
            "cannot change roleRef",
        ));
    }
}

// ---------------------------------------------------------------------------
// Pods

fn pod_update(old: &Pod, new: &Pod, errors: &mut ErrorList) {
    let spec = Path::new("spec");
    for (field, old_containers, new_containers) in [
        ("containers", &old.spec.containers, &new.spec.containers),
        (
            "initContainers",
            &old.spec.init_containers,
            &new.spec.init_containers,
        ),
    ] {
        if !container_updates(old_containers, new_containers, &spec.child(field), errors) {
            return;
        }
    }
    let deadline = spec.child("activeDeadlineSeconds");
    match (
        old.spec.active_deadline_seconds,
        new.spec.active_deadline_seconds,
    ) {
        (_, Some(new_value)) if !(0..=i64::from(i32::MAX)).contains(&new_value) => {
            errors.push(FieldError::invalid_raw(
                &deadline,
                new_value,
                format!("must be between 0 and {}, inclusive", i32::MAX),
            ));
            return;
        }
        (Some(old_value), Some(new_value)) if old_value < new_value => {
            errors.push(FieldError::invalid_raw(
                &deadline,
                new_value,
                "must be less than or equal to previous value",
            ));
            return;
        }
        (Some(_), None) => errors.push(FieldError::invalid_raw(
            &deadline,
            "null",
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    only_added_tolerations(
        &old.spec.tolerations,
        &new.spec.tolerations,
        &spec.child("tolerations"),
        errors,
    );
    for (i, gate) in new.spec.scheduling_gates.iter().enumerate() {
        if !old
            .spec
            .scheduling_gates
            .iter()
            .any(|g| g.name == gate.name)
        {
            errors.push(FieldError::forbidden(
                &spec.child("schedulingGates").index(i).child("name"),
                format!(
                    "only deletion is allowed, but found new scheduling gate '{}'",
                    gate.name
                ),
            ));
        }
    }
    if new.spec == old.spec {
        return;
    }
    let munged = munged_pod_spec(old, new, errors);
    if munged != old.spec {
        errors.push(FieldError::forbidden(
            &spec,
            format!("{POD_UPDATE_FORBIDDEN}\n{}", spec_diff(&old.spec, &munged)),
        ));
    }
}

/// `ValidateContainerUpdates`: false when the containers were added or
/// removed, which ends the pod checks as in Kubernetes.
fn container_updates(
    old: &[Container],
    new: &[Container],
    path: &Path,
    errors: &mut ErrorList,
) -> bool {
    if old.len() != new.len() {
        errors.push(FieldError::forbidden(
            path,
            "pod updates may not add or remove containers",
        ));
        return false;
    }
    for (i, container) in new.iter().enumerate() {
        let image = path.index(i).child("image");
        if container.image.is_empty() {
            errors.push(FieldError::required(&image, ""));
        }
        if container.image.trim() != container.image {
            errors.push(FieldError::invalid(
                &image,
                &container.image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    true
}

/// `validateOnlyAddedTolerations`: every old toleration must still be
/// there, with at most its `tolerationSeconds` changed.
fn only_added_tolerations(
    old: &[Toleration],
    new: &[Toleration],
    path: &Path,
    errors: &mut ErrorList,
) {
    let kept = |toleration: &Toleration| {
        new.iter().any(|n| {
            Toleration {
                toleration_seconds: n.toleration_seconds,
                ..toleration.clone()
            } == *n
        })
    };
    if !old.iter().all(kept) {
        errors.push(FieldError::forbidden(
            path,
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
}

/// The new spec with every field a pod update may change put back to its
/// old value; what differs from the old spec after this is forbidden.
fn munged_pod_spec(old: &Pod, new: &Pod, errors: &mut ErrorList) -> PodSpec {
    let mut munged = new.spec.clone();
    for (container, old_container) in munged.containers.iter_mut().zip(&old.spec.containers) {
        container.image = old_container.image.clone();
    }
    for (container, old_container) in munged
        .init_containers
        .iter_mut()
        .zip(&old.spec.init_containers)
    {
        container.image = old_container.image.clone();
    }
    munged.active_deadline_seconds = old.spec.active_deadline_seconds;
    munged.scheduling_gates = old.spec.scheduling_gates.clone();
    munged.tolerations = old.spec.tolerations.clone();
    if old
        .spec
        .termination_grace_period_seconds
        .is_some_and(|s| s < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old.spec.termination_grace_period_seconds;
    }
    if !old.spec.scheduling_gates.is_empty() {
        // A gated pod may gain node selector labels (no removal or change).
        let only_added = old
            .spec
            .node_selector
            .iter()
            .all(|(k, v)| munged.node_selector.get(k) == Some(v));
        if only_added {
            munged.node_selector = old.spec.node_selector.clone();
        } else {
            errors.push(FieldError::invalid_raw(
                &Path::new("spec").child("nodeSelector"),
                gofmt::string_map(&munged.node_selector),
                "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
            ));
            munged.node_selector = old.spec.node_selector.clone();
        }
    }
    munged
}

/// The fields of two pod specs that differ, one `- path: old` and one
/// `+ path: new` line each (values as JSON), in place of the Go structure
/// diff kube-apiserver appends.
fn spec_diff(old: &PodSpec, new: &PodSpec) -> String {
    let (old, new) = match (serde_json::to_value(old), serde_json::to_value(new)) {
        (Ok(old), Ok(new)) => (old, new),
        _ => return String::new(),
    };
    let mut lines = Vec::new();
    diff_values("spec", &old, &new, &mut lines);
    lines.join("\n")
}

fn diff_values(path: &str, old: &Value, new: &Value, lines: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(old_map), Value::Object(new_map)) => {
            let keys: std::collections::BTreeSet<&String> =
                old_map.keys().chain(new_map.keys()).collect();
            for key in keys {
                let null = Value::Null;
                diff_values(
                    &format!("{path}.{key}"),
                    old_map.get(key).unwrap_or(&null),
                    new_map.get(key).unwrap_or(&null),
                    lines,
                );
            }
        }
        (Value::Array(old_items), Value::Array(new_items))
            if old_items.len() == new_items.len() =>
        {
            for (i, (o, n)) in old_items.iter().zip(new_items).enumerate() {
                diff_values(&format!("{path}[{i}]"), o, n, lines);
            }
        }
        _ if old != new => {
            lines.push(format!("- {path}: {old}"));
            lines.push(format!("+ {path}: {new}"));
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Workloads

fn job_update(old: &Job, new: &Job, errors: &mut ErrorList) {
    let spec = Path::new("spec");
    let indexed = new.spec.completion_mode.as_deref() == Some("Indexed");
    if new.spec.completions != old.spec.completions {
        if !indexed {
            errors.push(immutable(
                &spec.child("completions"),
                gofmt::pointer(new.spec.completions),
            ));
        } else if let Some(completions) = new.spec.completions
            && new.spec.parallelism != Some(completions)
        {
            errors.push(FieldError::invalid_raw(
                &spec.child("completions"),
                completions,
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    selector_immutable(&old.spec.selector, &new.spec.selector, errors);
    let mut old_template = old.spec.template.clone();
    let suspended = old.spec.suspend == Some(true);
    if suspended && old.status.start_time.is_none() {
        // Scheduling directives of a Job that never ran may change.
        let template = &new.spec.template;
        old_template.metadata.labels = template.metadata.labels.clone();
        old_template.metadata.annotations = template.metadata.annotations.clone();
        old_template.spec.node_selector = template.spec.node_selector.clone();
        old_template.spec.tolerations = template.spec.tolerations.clone();
        old_template.spec.scheduling_gates = template.spec.scheduling_gates.clone();
        let node_affinity = template
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.clone());
        if let Some(affinity) = &mut old_template.spec.affinity {
            affinity.node_affinity = node_affinity;
            if template.spec.affinity.is_none() && *affinity == Default::default() {
                old_template.spec.affinity = None;
            }
        } else if template.spec.affinity.is_some() {
            old_template.spec.affinity = Some(Affinity {
                node_affinity,
                ..Default::default()
            });
        }
    }
    if new.spec.template != old_template {
        // kube-apiserver prints the whole PodTemplateSpec here; it is left out.
        errors.push(FieldError {
            kind: ErrorType::Invalid,
            field: spec.child("template"),
            value: None,
            detail: FIELD_IMMUTABLE.to_owned(),
        });
    }
    if new.spec.completion_mode != old.spec.completion_mode {
        errors.push(immutable(
            &spec.child("completionMode"),
            gofmt::pointer(new.spec.completion_mode.as_deref().map(gofmt::string)),
        ));
    }
}

// ---------------------------------------------------------------------------
// Services, configuration, nodes

fn service_update(old: &Service, new: &Service, errors: &mut ErrorList) {
    cluster_ips_update(old, new, errors);
    let load_balancer = |svc: &Service| svc.spec.type_ == "LoadBalancer";
    if load_balancer(old)
        && load_balancer(new)
        && old.spec.load_balancer_class != new.spec.load_balancer_class
    {
        errors.push(FieldError::invalid_raw(
            &Path::new("spec").child("loadBalancerClass"),
            gofmt::pointer(new.spec.load_balancer_class.as_deref().map(gofmt::string)),
            "may not change once set",
        ));
    }
}

/// `validateUpgradeDowngradeClusterIPs`.
fn cluster_ips_update(old: &Service, new: &Service, errors: &mut ErrorList) {
    if old.spec.type_ == "ExternalName" || new.spec.type_ == "ExternalName" {
        return;
    }
    let headless = |svc: &Service| {
        svc.spec.type_ == "ClusterIP"
            && svc.spec.cluster_ips.len() == 1
            && svc.spec.cluster_ips[0] == "None"
    };
    if headless(old) && headless(new) {
        return;
    }
    let (old_ips, new_ips) = (&old.spec.cluster_ips, &new.spec.cluster_ips);
    let first = Path::new("spec").child("clusterIPs").index(0);
    let value = || gofmt::string_slice(new_ips);
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                errors.push(FieldError::invalid_raw(
                    &Path::new("spec").child("clusterIPs").index(i),
                    value(),
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errors.push(FieldError::invalid_raw(
                &first,
                value(),
                "primary clusterIP can not be unset",
            ));
        }
        if !old_ips.is_empty() && !new_ips.is_empty() && new_ips[0] != old_ips[0] {
            errors.push(FieldError::invalid_raw(
                &first,
                value(),
                "may not change once set",
            ));
        }
        if new_ips.len() == 1 && new.spec.ip_family_policy.as_deref() != Some("SingleStack") {
            errors.push(FieldError::invalid_raw(
                &first,
                value(),
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errors.push(FieldError::invalid_raw(
            &first,
            value(),
            "may not change once set",
        ));
    }
}

fn config_map_update(old: &ConfigMap, new: &ConfigMap, errors: &mut ErrorList) {
    if old.immutable != Some(true) {
        return;
    }
    if new.immutable != Some(true) {
        errors.push(FieldError::forbidden(
            &Path::new("immutable"),
            IMMUTABLE_WHEN_SET,
        ));
    }
    if new.data != old.data {
        errors.push(FieldError::forbidden(
            &Path::new("data"),
            IMMUTABLE_WHEN_SET,
        ));
    }
    if new.binary_data != old.binary_data {
        errors.push(FieldError::forbidden(
            &Path::new("binaryData"),
            IMMUTABLE_WHEN_SET,
        ));
    }
}

fn secret_update(old: &Secret, new: &Secret, errors: &mut ErrorList) {
    if new.type_ != old.type_ {
        errors.push(immutable(&Path::new("type"), gofmt::string(&new.type_)));
    }
    if old.immutable != Some(true) {
        return;
    }
    if new.immutable != Some(true) {
        errors.push(FieldError::forbidden(
            &Path::new("immutable"),
            IMMUTABLE_WHEN_SET,
        ));
    }
    // `stringData` counts as the `data` it becomes.
    let mut merged = new.clone();
    merged.merge_string_data();
    if merged.data != old.data {
        errors.push(FieldError::forbidden(
            &Path::new("data"),
            IMMUTABLE_WHEN_SET,
        ));
    }
}

fn node_update(old: &Node, new: &Node, errors: &mut ErrorList) {
    let spec = Path::new("spec");
    let cidrs_changed = (!old.spec.pod_cidrs.is_empty()
        && old.spec.pod_cidrs != new.spec.pod_cidrs)
        || (!old.spec.pod_cidr.is_empty() && old.spec.pod_cidr != new.spec.pod_cidr);
    if cidrs_changed {
        errors.push(FieldError::forbidden(
            &spec.child("podCIDRs"),
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    if !old.spec.provider_id.is_empty() && old.spec.provider_id != new.spec.provider_id {
        errors.push(FieldError::forbidden(
            &spec.child("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::Time;
    use serde_json::json;

    use super::super::{CreateContext, prepare_for_create, prepare_for_update};
    use super::*;

    fn decode(value: Value) -> Object {
        super::super::decode_test_object(value)
    }

    fn stored(value: Value) -> Object {
        let mut object = decode(value);
        prepare_for_create(
            &mut object,
            &CreateContext {
                uid: "uid-1".to_owned(),
                now: Time("2026-11-21T14:16:28Z".to_owned()),
            },
        );
        validate(&object).unwrap_or_else(|e| panic!("stored object is valid: {e}"));
        object
    }

    /// The errors of an update that edits the stored object as `kubectl
    /// edit` does, after the update strategy ran.
    fn update_errors(old: &Object, edit: fn(&mut Value)) -> Vec<String> {
        let mut value = old.to_value();
        edit(&mut value);
        let mut new = decode(value);
        prepare_for_update(old, &mut new);
        errors_of(validate_update(old, &new))
    }

    fn errors_of(result: Result<(), ErrorList>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// A name, the stored object's manifest, the edit, the expected errors.
    type Case<'a> = (&'a str, Value, fn(&mut Value), Vec<&'a str>);

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": "default"},
               "spec": {"nodeName": "pi-1", "activeDeadlineSeconds": 100,
                        "containers": [{"name": "c", "image": "x:1"}],
                        "tolerations": [{"key": "battery", "operator": "Exists",
                                         "effect": "NoExecute", "tolerationSeconds": 60}],
                        "schedulingGates": [{"name": "a"}]}})
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})
    }

    fn job(extra: Value) -> Value {
        let mut job = json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "pi", "namespace": "default"},
               "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5"}],
                                              "restartPolicy": "Never"}}}});
        if let (Some(spec), Value::Object(extra)) = (job["spec"].as_object_mut(), extra) {
            spec.extend(extra);
        }
        job
    }

    fn service(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn update_rules_allow_and_refuse_like_kubernetes() {
        let forbidden_pod_change = format!(
            "spec: Forbidden: {POD_UPDATE_FORBIDDEN}\n- spec.nodeName: \"pi-1\"\n+ spec.nodeName: \"pi-2\""
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "pod: image",
                pod(),
                |v| v["spec"]["containers"][0]["image"] = json!("x:2"),
                vec![],
            ),
            (
                "pod: labels",
                pod(),
                |v| v["metadata"]["labels"] = json!({"a": "b"}),
                vec![],
            ),
            (
                "pod: node name",
                pod(),
                |v| v["spec"]["nodeName"] = json!("pi-2"),
                vec![forbidden_pod_change.as_str()],
            ),
            (
                "pod: added container",
                pod(),
                |v| {
                    let extra = json!({"name": "d", "image": "y:1"});
                    v["spec"]["containers"].as_array_mut().unwrap().push(extra);
                },
                vec!["spec.containers: Forbidden: pod updates may not add or remove containers"],
            ),
            (
                "pod: empty image",
                pod(),
                |v| v["spec"]["containers"][0]["image"] = json!(""),
                vec!["spec.containers[0].image: Required value"],
            ),
            (
                "pod: shorter deadline",
                pod(),
                |v| v["spec"]["activeDeadlineSeconds"] = json!(50),
                vec![],
            ),
            (
                "pod: longer deadline",
                pod(),
                |v| v["spec"]["activeDeadlineSeconds"] = json!(200),
                vec![
                    "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value",
                ],
            ),
            (
                "pod: deadline removed",
                pod(),
                |v| {
                    v["spec"]
                        .as_object_mut()
                        .unwrap()
                        .remove("activeDeadlineSeconds");
                },
                vec![
                    "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value",
                ],
            ),
            (
                "pod: added toleration",
                pod(),
                |v| {
                    let extra =
                        json!({"key": "heat", "operator": "Exists", "effect": "NoSchedule"});
                    v["spec"]["tolerations"].as_array_mut().unwrap().push(extra);
                },
                vec![],
            ),
            (
                "pod: toleration seconds",
                pod(),
                |v| v["spec"]["tolerations"][0]["tolerationSeconds"] = json!(5),
                vec![],
            ),
            (
                "pod: changed toleration",
                pod(),
                |v| v["spec"]["tolerations"][0]["key"] = json!("heat"),
                vec![
                    "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds",
                ],
            ),
            (
                "pod: removed gate",
                pod(),
                |v| v["spec"]["schedulingGates"] = json!([]),
                vec![],
            ),
            (
                "pod: added gate",
                pod(),
                |v| v["spec"]["schedulingGates"] = json!([{"name": "a"}, {"name": "b"}]),
                vec![
                    "spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found new scheduling gate 'b'",
                ],
            ),
            (
                "pod: gated node selector addition",
                pod(),
                |v| v["spec"]["nodeSelector"] = json!({"zone": "a"}),
                vec![],
            ),
            (
                "deployment: replicas and template",
                deployment(),
                |v| {
                    v["spec"]["replicas"] = json!(4);
                    v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.28");
                },
                vec![],
            ),
            (
                "deployment: selector",
                deployment(),
                |v| {
                    v["spec"]["selector"]["matchLabels"]["app"] = json!("web2");
                    v["spec"]["template"]["metadata"]["labels"]["app"] = json!("web2");
                },
                vec![
                    r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#,
                ],
            ),
            (
                "replicaset: selector",
                {
                    let mut rs = deployment();
                    rs["kind"] = json!("ReplicaSet");
                    rs
                },
                |v| {
                    v["spec"]["selector"]["matchLabels"]["tier"] = json!("front");
                    v["spec"]["template"]["metadata"]["labels"]["tier"] = json!("front");
                },
                vec![
                    r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"front"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#,
                ],
            ),
            (
                "daemonset: selector",
                {
                    let mut ds = deployment();
                    ds["kind"] = json!("DaemonSet");
                    ds
                },
                |v| {
                    v["spec"]["selector"]["matchLabels"]["app"] = json!("x");
                    v["spec"]["template"]["metadata"]["labels"]["app"] = json!("x");
                },
                vec![
                    r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#,
                ],
            ),
            (
                "job: parallelism",
                job(json!({})),
                |v| v["spec"]["parallelism"] = json!(0),
                vec![],
            ),
            (
                "job: template",
                job(json!({})),
                |v| v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:6"),
                vec!["spec.template: Invalid value: field is immutable"],
            ),
            (
                "job: completions",
                job(json!({})),
                |v| v["spec"]["completions"] = json!(2),
                vec!["spec.completions: Invalid value: 2: field is immutable"],
            ),
            (
                "job: completion mode",
                job(json!({})),
                |v| v["spec"]["completionMode"] = json!("Indexed"),
                vec![r#"spec.completionMode: Invalid value: "Indexed": field is immutable"#],
            ),
            (
                "job: suspended job's scheduling directives",
                job(json!({"suspend": true})),
                |v| {
                    let spec = &mut v["spec"]["template"]["spec"];
                    spec["nodeSelector"] = json!({"zone": "a"});
                    spec["tolerations"] = json!([{"operator": "Exists"}]);
                },
                vec![],
            ),
            (
                "job: suspended job's image",
                job(json!({"suspend": true})),
                |v| v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:6"),
                vec!["spec.template: Invalid value: field is immutable"],
            ),
            (
                "job: indexed completions with parallelism",
                job(json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3})),
                |v| {
                    v["spec"]["completions"] = json!(4);
                    v["spec"]["parallelism"] = json!(4);
                },
                vec![],
            ),
            (
                "job: indexed completions alone",
                job(json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3})),
                |v| v["spec"]["completions"] = json!(4),
                vec![
                    "spec.completions: Invalid value: 4: can only be modified in tandem with spec.parallelism",
                ],
            ),
            (
                "service: cluster IP",
                service(json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]})),
                |v| v["spec"]["clusterIP"] = json!("10.96.0.99"),
                vec![
                    r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.99"}: may not change once set"#,
                ],
            ),
            (
                "service: cluster IP allocated later",
                service(json!({"ports": [{"port": 80}]})),
                |v| {
                    v["spec"]["clusterIP"] = json!("10.96.0.21");
                    v["spec"]["clusterIPs"] = json!(["10.96.0.21"]);
                },
                vec![],
            ),
            (
                "service: ports",
                service(json!({"clusterIP": "10.96.0.20", "ports": [{"port": 80}]})),
                |v| v["spec"]["ports"][0]["port"] = json!(8080),
                vec![],
            ),
            (
                "service: load balancer class",
                service(
                    json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/a",
                               "ports": [{"port": 80}]}),
                ),
                |v| v["spec"]["loadBalancerClass"] = json!("example.com/b"),
                vec![
                    r#"spec.loadBalancerClass: Invalid value: "example.com/b": may not change once set"#,
                ],
            ),
            (
                "configmap: data",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}}),
                |v| v["data"]["k"] = json!("w"),
                vec![],
            ),
            (
                "configmap: immutable data",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "immutable": true,
                       "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}}),
                |v| {
                    v["data"]["k"] = json!("w");
                    v["binaryData"] = json!({"b": "AA=="});
                },
                vec![
                    "data: Forbidden: field is immutable when `immutable` is set",
                    "binaryData: Forbidden: field is immutable when `immutable` is set",
                ],
            ),
            (
                "configmap: immutable unset",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "immutable": true,
                       "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}}),
                |v| v["immutable"] = json!(false),
                vec!["immutable: Forbidden: field is immutable when `immutable` is set"],
            ),
            (
                "configmap: immutable labels",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "immutable": true,
                       "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}}),
                |v| v["metadata"]["labels"] = json!({"a": "b"}),
                vec![],
            ),
            (
                "secret: type",
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "s", "namespace": "default"}, "data": {"k": "dg=="}}),
                |v| v["type"] = json!("example.com/custom"),
                vec![r#"type: Invalid value: "example.com/custom": field is immutable"#],
            ),
            (
                "secret: immutable string data",
                json!({"apiVersion": "v1", "kind": "Secret", "immutable": true,
                       "metadata": {"name": "s", "namespace": "default"}, "data": {"k": "dg=="}}),
                |v| v["stringData"] = json!({"k": "w"}),
                vec!["data: Forbidden: field is immutable when `immutable` is set"],
            ),
            (
                "rolebinding: subjects",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "b", "namespace": "default"},
                       "roleRef": {"kind": "Role", "name": "reader"}}),
                |v| v["subjects"] = json!([{"kind": "User", "name": "ann"}]),
                vec![],
            ),
            (
                "rolebinding: role ref",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "b", "namespace": "default"},
                       "roleRef": {"kind": "Role", "name": "reader"}}),
                |v| v["roleRef"]["name"] = json!("writer"),
                vec![
                    r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"writer"}: cannot change roleRef"#,
                ],
            ),
            (
                "clusterrolebinding: role ref",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                       "metadata": {"name": "b"},
                       "roleRef": {"kind": "ClusterRole", "name": "view"}}),
                |v| v["roleRef"]["name"] = json!("edit"),
                vec![
                    r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#,
                ],
            ),
            (
                "node: pod CIDR assigned",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "pi-1"}}),
                |v| v["spec"]["podCIDR"] = json!("10.244.1.0/24"),
                vec![],
            ),
            (
                "node: pod CIDR changed",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "pi-1"},
                       "spec": {"podCIDR": "10.244.1.0/24", "providerID": "flotilla://pi-1"}}),
                |v| {
                    v["spec"]["podCIDR"] = json!("10.244.2.0/24");
                    v["spec"]["podCIDRs"] = json!(["10.244.2.0/24"]);
                    v["spec"]["providerID"] = json!("flotilla://pi-2");
                },
                vec![
                    "spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid",
                    "spec.providerID: Forbidden: node updates may not change providerID except from \"\" to valid",
                ],
            ),
            (
                "metadata: name and uid",
                deployment(),
                |v| {
                    v["metadata"]["name"] = json!("other");
                    v["metadata"]["uid"] = json!("uid-2");
                },
                vec![
                    r#"metadata.name: Invalid value: "other": field is immutable"#,
                    r#"metadata.uid: Invalid value: "uid-2": field is immutable"#,
                ],
            ),
            (
                "metadata: namespace",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}),
                |v| v["metadata"]["namespace"] = json!("edge"),
                vec![r#"metadata.namespace: Invalid value: "edge": field is immutable"#],
            ),
        ];
        for (name, old, edit, expected) in cases {
            let old = stored(old);
            assert_eq!(update_errors(&old, edit), expected, "{name}");
        }
    }

    #[test]
    fn every_error_of_an_update_is_reported_at_once() {
        let old = stored(deployment());
        let errors = update_errors(&old, |v| {
            v["metadata"]["name"] = json!("other");
            v["spec"]["selector"]["matchLabels"]["app"] = json!("web2");
        });
        assert_eq!(
            errors,
            [
                r#"metadata.name: Invalid value: "other": field is immutable"#,
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#,
                r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#,
            ]
        );
    }

    #[test]
    fn system_fields_are_immutable_when_not_carried_over() {
        let old = stored(deployment());
        let mut new = old.clone();
        let meta = new.metadata_mut();
        meta.creation_timestamp = Some(Time("2020-01-01T00:00:00Z".to_owned()));
        meta.deletion_timestamp = Some(Time("2026-11-22T00:00:00Z".to_owned()));
        meta.deletion_grace_period_seconds = Some(30);
        meta.generation = 0;
        assert_eq!(
            errors_of(validate_update(&old, &new)),
            [
                "metadata.generation: Invalid value: 0: must not be decremented",
                "metadata.creationTimestamp: Invalid value: 2020-01-01 00:00:00 +0000 UTC: field is immutable",
                "metadata.deletionTimestamp: Invalid value: 2026-11-22 00:00:00 +0000 UTC: field is immutable",
                "metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable",
            ]
        );
    }

    #[test]
    fn no_finalizer_may_be_added_to_an_object_being_deleted() {
        let mut old = stored(deployment());
        old.metadata_mut().deletion_timestamp = Some(Time("2026-11-22T00:00:00Z".to_owned()));
        old.metadata_mut().finalizers = vec!["example.com/a".to_owned()];
        let removed = update_errors(&old, |v| v["metadata"]["finalizers"] = json!([]));
        assert_eq!(removed, Vec::<String>::new());
        let added = update_errors(&old, |v| {
            v["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"])
        });
        assert_eq!(
            added,
            [
                r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/b"}"#
            ]
        );
    }

    #[test]
    fn a_negative_grace_period_may_only_become_one() {
        let mut old = stored(pod());
        if let Object::Pod(pod) = &mut old {
            pod.spec.termination_grace_period_seconds = Some(-1);
        }
        let to_one = update_errors(&old, |v| {
            v["spec"]["terminationGracePeriodSeconds"] = json!(1)
        });
        assert_eq!(to_one, Vec::<String>::new());
        let to_five = update_errors(&old, |v| {
            v["spec"]["terminationGracePeriodSeconds"] = json!(5)
        });
        assert_eq!(
            to_five,
            [format!(
                "spec: Forbidden: {POD_UPDATE_FORBIDDEN}\n- spec.terminationGracePeriodSeconds: -1\n+ spec.terminationGracePeriodSeconds: 5"
            )]
        );
    }

    #[test]
    fn an_update_may_not_change_the_kind() {
        let old = stored(deployment());
        let mut value = deployment();
        value["kind"] = json!("ReplicaSet");
        let new = decode(value);
        assert_eq!(
            errors_of(validate_update(&old, &new)),
            [r#"kind: Invalid value: "ReplicaSet": field is immutable"#]
        );
    }

    #[test]
    fn an_unchanged_object_validates() {
        for value in [
            pod(),
            deployment(),
            job(json!({})),
            service(json!({"ports": [{"port": 80}]})),
        ] {
            let old = stored(value.clone());
            assert_eq!(update_errors(&old, |_| {}), Vec::<String>::new(), "{value}");
        }
    }
}
