//! Registry strategies: what the API server itself does to an object on its
//! way to the store, kind by kind, as kube-apiserver's registry does.
//!
//! - [`apply_defaults`]: the defaulting Kubernetes applies when it decodes
//!   an object (`pkg/apis/core/v1/defaults.go`, `pkg/apis/apps/v1/defaults.go`,
//!   `pkg/apis/batch/v1/defaults.go`, `pkg/apis/rbac/v1/defaults.go`).
//! - [`prepare_for_create`], [`prepare_for_update`],
//!   [`prepare_for_status_update`], [`prepare_for_namespace_finalize`]:
//!   the fields the server owns (`rest.BeforeCreate` / `rest.BeforeUpdate`
//!   in `k8s.io/apiserver/pkg/registry/rest` and each kind's
//!   `pkg/registry/<group>/<kind>/strategy.go`): status, generation, uid,
//!   timestamps, Job selectors, the status subresource split.
//! - [`validate_update`]: [`flotilla_shared::validation::validate`] plus
//!   every rule about what an update may change (`ValidateObjectMetaUpdate`
//!   in `k8s.io/apimachinery/pkg/api/validation/objectmeta.go`, the
//!   `Validate*Update` functions of `pkg/apis/*/validation`), with
//!   Kubernetes' wording and field paths.
//!
//! Everything here is a pure function over the typed model: no clock, no
//! randomness, no store. The handlers call, in order: `prepare_for_create`
//! then validation for a create; `prepare_for_update` (or
//! `prepare_for_status_update` for `/status`) then `validate_update` for
//! an update.

mod defaults;
mod gofmt;
mod prepare;
mod qos;
mod update;

pub use defaults::apply_defaults;
pub use prepare::{
    CreateContext, prepare_for_create, prepare_for_namespace_finalize, prepare_for_status_update,
    prepare_for_update,
};
pub use qos::pod_qos_class;
pub use update::validate_update;

/// Kinds served with a `status` subresource: an update of the main
/// resource keeps the stored status, an update of `/status` keeps
/// everything else (Kubernetes serves `pods/status`, `nodes/status`,
/// `namespaces/status`, `services/status`, `deployments/status`,
/// `replicasets/status`, `daemonsets/status` and `jobs/status`).
pub fn has_status_subresource(kind: &str) -> bool {
    matches!(
        kind,
        "Pod"
            | "Node"
            | "Namespace"
            | "Service"
            | "Deployment"
            | "ReplicaSet"
            | "DaemonSet"
            | "Job"
    )
}

/// Kinds served with a `scale` subresource (`kubectl scale`).
pub fn has_scale_subresource(kind: &str) -> bool {
    matches!(kind, "Deployment" | "ReplicaSet")
}

/// Test manifests, strictly decoded (shared by the tests of every file here).
#[cfg(test)]
fn decode_test_object(value: serde_json::Value) -> flotilla_shared::model::Object {
    flotilla_shared::manifest::decode_object(
        value,
        flotilla_shared::manifest::FieldValidation::Strict,
    )
    .expect("test manifest decodes")
    .object
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::KINDS;

    use super::*;

    #[test]
    fn status_and_scale_subresources_are_served_for_the_kubernetes_kinds() {
        let status: Vec<_> = KINDS
            .iter()
            .filter(|info| has_status_subresource(info.kind))
            .map(|info| info.kind)
            .collect();
        assert_eq!(
            status,
            [
                "Namespace",
                "Node",
                "Pod",
                "ReplicaSet",
                "Deployment",
                "DaemonSet",
                "Job",
                "Service"
            ]
        );
        let scale: Vec<_> = KINDS
            .iter()
            .filter(|info| has_scale_subresource(info.kind))
            .map(|info| info.kind)
            .collect();
        assert_eq!(scale, ["ReplicaSet", "Deployment"]);
        assert!(!has_status_subresource("pods"));
    }
}
