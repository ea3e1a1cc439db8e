//! `ObjectMeta` and the kinds whose rules are mostly about metadata and keys.

use std::collections::BTreeMap;

use super::{ErrorList, FieldError, Path, names};
use crate::model::{ConfigMap, Event, Lease, Namespace, Node, ObjectMeta, Resource, Secret};
use crate::selector::{validate_label_key, validate_label_value};

/// The largest total size of one object's annotations (keys plus values).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// The largest ConfigMap or Secret payload, as etcd's request limit forces in Kubernetes.
pub const MAX_CONFIG_SIZE: usize = 1024 * 1024;

/// How an object's name must look.
pub type NameCheck = fn(&str) -> Vec<String>;

/// `ValidateObjectMeta`: name or generateName, namespace scope, labels,
/// annotations, owner references and finalizers.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_check: NameCheck,
) -> ErrorList {
    let path = Path::new("metadata");
    let mut errors = ErrorList::new();

    if meta.name.is_empty() && meta.generate_name.is_empty() {
        errors.push(FieldError::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    }
    if !meta.name.is_empty() {
        for msg in name_check(&meta.name) {
            errors.push(FieldError::invalid(&path.child("name"), &meta.name, msg));
        }
    }
    if !meta.generate_name.is_empty() {
        // A generated name gets a random suffix: the prefix may end in '-'.
        let prefix = meta.generate_name.trim_end_matches('-');
        if !prefix.is_empty() {
            for msg in name_check(prefix) {
                errors.push(FieldError::invalid(
                    &path.child("generateName"),
                    &meta.generate_name,
                    msg,
                ));
            }
        }
    }
    if namespaced {
        if !meta.namespace.is_empty() {
            for msg in names::dns1123_label(&meta.namespace) {
                errors.push(FieldError::invalid(
                    &path.child("namespace"),
                    &meta.namespace,
                    msg,
                ));
            }
        }
    } else if !meta.namespace.is_empty() {
        errors.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if meta.generation < 0 {
        errors.push(FieldError::invalid_raw(
            &path.child("generation"),
            meta.generation,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(seconds) = meta.deletion_grace_period_seconds
        && seconds < 0
    {
        errors.push(FieldError::invalid_raw(
            &path.child("deletionGracePeriodSeconds"),
            seconds,
            "must be greater than or equal to 0",
        ));
    }
    errors.extend(validate_labels(&meta.labels, &path.child("labels")));
    errors.extend(validate_annotations(
        &meta.annotations,
        &path.child("annotations"),
    ));
    errors.extend(validate_owner_references(
        meta,
        &path.child("ownerReferences"),
    ));
    for (i, finalizer) in meta.finalizers.iter().enumerate() {
        for msg in validate_label_key(finalizer) {
            errors.push(FieldError::invalid(
                &path.child("finalizers").index(i),
                finalizer,
                msg,
            ));
        }
    }
    errors
}

/// Label keys are qualified names, values are at most 63 characters of a small alphabet.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &Path) -> ErrorList {
    let mut errors = ErrorList::new();
    for (key, value) in labels {
        for msg in validate_label_key(key) {
            errors.push(FieldError::invalid(path, key, msg));
        }
        for msg in validate_label_value(value) {
            errors.push(FieldError::invalid(&path.key(key), value, msg));
        }
    }
    errors
}

fn validate_annotations(annotations: &BTreeMap<String, String>, path: &Path) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut total = 0;
    for (key, value) in annotations {
        for msg in validate_label_key(&key.to_lowercase()) {
            errors.push(FieldError::invalid(path, key, msg));
        }
        total += key.len() + value.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errors
}

fn validate_owner_references(meta: &ObjectMeta, path: &Path) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut first_controller: Option<String> = None;
    for (i, owner) in meta.owner_references.iter().enumerate() {
        let at = path.index(i);
        // Kubernetes' words (it leaves out the index, which is kept here);
        // a version-less apiVersion such as `apps/` counts as empty.
        let version = owner.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errors.push(FieldError::invalid(
                &at.child("apiVersion"),
                &owner.api_version,
                "version must not be empty",
            ));
        }
        for (field, value) in [
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errors.push(FieldError::invalid(
                    &at.child(field),
                    value,
                    "must not be empty",
                ));
            }
        }
        if owner.controller == Some(true) {
            let name = format!("{}/{}", owner.kind, owner.name);
            match &first_controller {
                None => first_controller = Some(name),
                Some(first) => errors.push(FieldError::invalid(
                    path,
                    &name,
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {name}"
                    ),
                )),
            }
        }
    }
    errors
}

pub(super) fn validate_namespace(ns: &Namespace) -> ErrorList {
    validate_object_meta(&ns.metadata, Namespace::NAMESPACED, names::dns1123_label)
}

pub(super) fn validate_node(node: &Node) -> ErrorList {
    let mut errors =
        validate_object_meta(&node.metadata, Node::NAMESPACED, names::dns1123_subdomain);
    let taints = Path::new("spec").child("taints");
    let mut seen = std::collections::BTreeSet::new();
    for (i, taint) in node.spec.taints.iter().enumerate() {
        let at = taints.index(i);
        if taint.key.is_empty() {
            errors.push(FieldError::required(&at.child("key"), ""));
        }
        for msg in validate_label_key(&taint.key) {
            if !taint.key.is_empty() {
                errors.push(FieldError::invalid(&at.child("key"), &taint.key, msg));
            }
        }
        for msg in validate_label_value(&taint.value) {
            errors.push(FieldError::invalid(&at.child("value"), &taint.value, msg));
        }
        if !super::pod::TAINT_EFFECTS.contains(&taint.effect.as_str()) || taint.effect.is_empty() {
            errors.push(if taint.effect.is_empty() {
                FieldError::required(&at.child("effect"), "")
            } else {
                FieldError::not_supported(
                    &at.child("effect"),
                    &taint.effect,
                    super::pod::TAINT_EFFECTS,
                )
            });
        }
        if !seen.insert((taint.key.as_str(), taint.effect.as_str())) {
            let mut duplicate =
                FieldError::duplicate(&at, &format!("{}:{}", taint.key, taint.effect));
            duplicate.detail = "taints must be unique by key and effect pair".to_owned();
            errors.push(duplicate);
        }
    }
    errors
}

/// Keys of one map of a ConfigMap or Secret; returns the payload size.
fn validate_config_keys<'a>(
    entries: impl Iterator<Item = (&'a str, usize)>,
    field: &str,
    errors: &mut ErrorList,
) -> usize {
    let path = Path::new(field);
    let mut total = 0;
    for (key, len) in entries {
        for msg in names::config_key(key) {
            errors.push(FieldError::invalid(&path.key(key), key, msg));
        }
        total += len;
    }
    total
}

/// `ValidateConfigMap`: keys, no key in both `data` and `binaryData`, and
/// the total size (reported against the whole object, at the empty path).
pub(super) fn validate_config_map(cm: &ConfigMap) -> ErrorList {
    let mut errors = validate_object_meta(
        &cm.metadata,
        ConfigMap::NAMESPACED,
        names::dns1123_subdomain,
    );
    let data = Path::new("data");
    let mut total = 0;
    for (key, value) in &cm.data {
        for msg in names::config_key(key) {
            errors.push(FieldError::invalid(&data.key(key), key, msg));
        }
        if cm.binary_data.contains_key(key) {
            errors.push(FieldError::invalid(
                &data.key(key),
                key,
                "duplicate of key present in binaryData",
            ));
        }
        total += value.len();
    }
    let binary = cm.binary_data.iter().map(|(k, v)| (k.as_str(), v.0.len()));
    total += validate_config_keys(binary, "binaryData", &mut errors);
    if total > MAX_CONFIG_SIZE {
        errors.push(FieldError::too_long(&Path::new(""), MAX_CONFIG_SIZE));
    }
    errors
}

pub const SECRET_TYPES: &[&str] = &[
    "Opaque",
    "kubernetes.io/service-account-token",
    "kubernetes.io/dockercfg",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
    "bootstrap.kubernetes.io/token",
];

pub(super) fn validate_secret(secret: &Secret) -> ErrorList {
    let mut errors = validate_object_meta(
        &secret.metadata,
        Secret::NAMESPACED,
        names::dns1123_subdomain,
    );
    let data = secret.data.iter().map(|(k, v)| (k.as_str(), v.0.len()));
    let mut total = validate_config_keys(data, "data", &mut errors);
    // stringData is merged into data at admission: check its keys the same way.
    let string_data = secret
        .string_data
        .iter()
        .map(|(k, v)| (k.as_str(), v.len()));
    total += validate_config_keys(string_data, "stringData", &mut errors);
    if total > MAX_CONFIG_SIZE {
        errors.push(FieldError::too_long(&Path::new("data"), MAX_CONFIG_SIZE));
    }
    let type_path = Path::new("type");
    let has = |key: &str| secret.data.contains_key(key) || secret.string_data.contains_key(key);
    let has_value = |key: &str| {
        secret.data.get(key).is_some_and(|v| !v.0.is_empty())
            || secret.string_data.get(key).is_some_and(|v| !v.is_empty())
    };
    match secret.type_.as_str() {
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errors.push(FieldError::required(&Path::new("data").key(key), ""));
                }
            }
        }
        // Either may be empty, but one of the fields must be there.
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errors.push(FieldError::required(&Path::new("data").key("username"), ""));
            errors.push(FieldError::required(&Path::new("data").key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if !has_value("ssh-privatekey") => {
            errors.push(FieldError::required(
                &Path::new("data").key("ssh-privatekey"),
                "",
            ));
        }
        "" => {}
        // Kubernetes accepts any well-formed custom type (`example.com/thing`).
        other if !SECRET_TYPES.contains(&other) && !validate_label_key(other).is_empty() => {
            errors.push(FieldError::invalid(
                &type_path,
                other,
                "must be a qualified name",
            ));
        }
        _ => {}
    }
    errors
}

pub(super) fn validate_event(event: &Event) -> ErrorList {
    let mut errors =
        validate_object_meta(&event.metadata, Event::NAMESPACED, names::dns1123_subdomain);
    let involved = Path::new("involvedObject");
    if event.involved_object.kind.is_empty() {
        errors.push(FieldError::required(&involved.child("kind"), ""));
    }
    if event.involved_object.name.is_empty() {
        errors.push(FieldError::required(&involved.child("name"), ""));
    }
    if !event.type_.is_empty() && !["Normal", "Warning"].contains(&event.type_.as_str()) {
        errors.push(FieldError::not_supported(
            &Path::new("type"),
            &event.type_,
            &["Normal", "Warning"],
        ));
    }
    if event.reason.len() > 128 {
        errors.push(FieldError::too_long(&Path::new("reason"), 128));
    }
    if event.message.len() > 4096 {
        errors.push(FieldError::too_long(&Path::new("message"), 4096));
    }
    errors
}

pub(super) fn validate_lease(lease: &Lease) -> ErrorList {
    let mut errors =
        validate_object_meta(&lease.metadata, Lease::NAMESPACED, names::dns1123_subdomain);
    let spec = Path::new("spec");
    if let Some(seconds) = lease.spec.lease_duration_seconds
        && seconds <= 0
    {
        errors.push(FieldError::invalid_raw(
            &spec.child("leaseDurationSeconds"),
            seconds,
            "must be greater than 0",
        ));
    }
    if let Some(transitions) = lease.spec.lease_transitions
        && transitions < 0
    {
        errors.push(FieldError::invalid_raw(
            &spec.child("leaseTransitions"),
            transitions,
            "must be greater than or equal to 0",
        ));
    }
    errors
}
