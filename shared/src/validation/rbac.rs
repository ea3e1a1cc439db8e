//! Role, ClusterRole, RoleBinding and ClusterRoleBinding.

use super::{ErrorList, FieldError, Path, names, validate_object_meta};
use crate::model::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Resource, Role, RoleBinding, RoleRef, Subject,
};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// RBAC object names are path segments, not DNS names: anything but `/`, `%`, `.` and `..`.
fn path_segment_name(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// Go's `%#v` of a `[]string`, as Kubernetes prints `nonResourceURLs`.
fn go_string_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

pub fn validate_role(role: &Role) -> ErrorList {
    let mut errors = validate_object_meta(&role.metadata, Role::NAMESPACED, path_segment_name);
    errors.extend(validate_policy_rules(
        &role.rules,
        &Path::new("rules"),
        false,
    ));
    errors
}

pub fn validate_cluster_role(role: &ClusterRole) -> ErrorList {
    let mut errors =
        validate_object_meta(&role.metadata, ClusterRole::NAMESPACED, path_segment_name);
    errors.extend(validate_policy_rules(
        &role.rules,
        &Path::new("rules"),
        true,
    ));
    errors
}

/// Each rule needs verbs; a resource rule needs groups and resources; only
/// cluster-wide roles may grant non-resource URLs.
pub fn validate_policy_rules(rules: &[PolicyRule], path: &Path, cluster_scoped: bool) -> ErrorList {
    let mut errors = ErrorList::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = path.index(i);
        if rule.verbs.is_empty() {
            errors.push(FieldError::required(
                &at.child("verbs"),
                "verbs must contain at least one value",
            ));
        }
        if !rule.non_resource_urls.is_empty() {
            let urls = go_string_list(&rule.non_resource_urls);
            if !cluster_scoped {
                errors.push(FieldError::invalid_raw(
                    &at.child("nonResourceURLs"),
                    &urls,
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !rule.api_groups.is_empty()
                || !rule.resources.is_empty()
                || !rule.resource_names.is_empty()
            {
                errors.push(FieldError::invalid_raw(
                    &at.child("nonResourceURLs"),
                    &urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if rule.api_groups.is_empty() {
            errors.push(FieldError::required(
                &at.child("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if rule.resources.is_empty() {
            errors.push(FieldError::required(
                &at.child("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errors
}

pub fn validate_role_binding(binding: &RoleBinding) -> ErrorList {
    let mut errors = validate_object_meta(
        &binding.metadata,
        RoleBinding::NAMESPACED,
        path_segment_name,
    );
    check_role_ref(&binding.role_ref, &["Role", "ClusterRole"], &mut errors);
    check_subjects(&binding.subjects, false, &mut errors);
    errors
}

pub fn validate_cluster_role_binding(binding: &ClusterRoleBinding) -> ErrorList {
    let mut errors = validate_object_meta(
        &binding.metadata,
        ClusterRoleBinding::NAMESPACED,
        path_segment_name,
    );
    check_role_ref(&binding.role_ref, &["ClusterRole"], &mut errors);
    check_subjects(&binding.subjects, true, &mut errors);
    errors
}

fn check_role_ref(role_ref: &RoleRef, kinds: &[&str], errors: &mut ErrorList) {
    let path = Path::new("roleRef");
    if role_ref.api_group != RBAC_GROUP {
        errors.push(FieldError::not_supported(
            &path.child("apiGroup"),
            &role_ref.api_group,
            &[RBAC_GROUP],
        ));
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        errors.push(FieldError::not_supported(
            &path.child("kind"),
            &role_ref.kind,
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errors.push(FieldError::required(&path.child("name"), ""));
    } else {
        for msg in path_segment_name(&role_ref.name) {
            errors.push(FieldError::invalid(
                &path.child("name"),
                &role_ref.name,
                msg,
            ));
        }
    }
}

fn check_subjects(subjects: &[Subject], cluster_scoped: bool, errors: &mut ErrorList) {
    for (i, subject) in subjects.iter().enumerate() {
        let at = Path::new("subjects").index(i);
        if subject.name.is_empty() {
            errors.push(FieldError::required(&at.child("name"), ""));
        }
        match subject.kind.as_str() {
            "ServiceAccount" => {
                if !subject.name.is_empty() {
                    for msg in names::dns1123_subdomain(&subject.name) {
                        errors.push(FieldError::invalid(&at.child("name"), &subject.name, msg));
                    }
                }
                if !subject.api_group.is_empty() {
                    errors.push(FieldError::not_supported(
                        &at.child("apiGroup"),
                        &subject.api_group,
                        &[""],
                    ));
                }
                if cluster_scoped && subject.namespace.is_empty() {
                    errors.push(FieldError::required(&at.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if subject.api_group != RBAC_GROUP {
                    errors.push(FieldError::not_supported(
                        &at.child("apiGroup"),
                        &subject.api_group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errors.push(FieldError::not_supported(
                &at.child("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}
