//! Validation with Kubernetes' rules and wording.
//!
//! Every check walks the whole object and collects every problem with its
//! field path, so a user sees all of them at once, as `kubectl` shows them:
//!
//! ```text
//! spec.template.spec.containers[0].image: Required value
//! metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain must consist of ...
//! ```
//!
//! [`validate`] is the entry point for any [`Object`]; the per-kind
//! functions are public too so that controllers can check what they build.

mod errors;
mod meta;
pub mod names;
mod pod;
mod rbac;
mod service;
#[cfg(test)]
mod tests;
mod workloads;

pub use errors::{ErrorList, ErrorType, FieldError, Path};
pub use meta::{validate_labels, validate_object_meta};
pub use pod::{validate_pod, validate_pod_spec, validate_pod_template};
pub use rbac::validate_policy_rules;
pub use service::{validate_endpoints, validate_service};
pub use workloads::{validate_daemon_set, validate_deployment, validate_job, validate_replica_set};

use crate::model::Object;

/// Validates an object as admission does for a create: every field error at once.
pub fn validate(object: &Object) -> Result<(), ErrorList> {
    let errors = match object {
        Object::Namespace(ns) => meta::validate_namespace(ns),
        Object::Node(node) => meta::validate_node(node),
        Object::Pod(pod) => validate_pod(pod),
        Object::ReplicaSet(rs) => validate_replica_set(rs),
        Object::Deployment(d) => validate_deployment(d),
        Object::DaemonSet(ds) => validate_daemon_set(ds),
        Object::Job(job) => validate_job(job),
        Object::Service(svc) => validate_service(svc),
        Object::Endpoints(ep) => validate_endpoints(ep),
        Object::ConfigMap(cm) => meta::validate_config_map(cm),
        Object::Secret(secret) => meta::validate_secret(secret),
        Object::Event(event) => meta::validate_event(event),
        Object::Lease(lease) => meta::validate_lease(lease),
        Object::Role(role) => rbac::validate_role(role),
        Object::ClusterRole(role) => rbac::validate_cluster_role(role),
        Object::RoleBinding(binding) => rbac::validate_role_binding(binding),
        Object::ClusterRoleBinding(binding) => rbac::validate_cluster_role_binding(binding),
    };
    errors.into_result()
}
