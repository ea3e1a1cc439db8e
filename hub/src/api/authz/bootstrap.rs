//! The built-in RBAC policy the hub writes when a cluster is initialised,
//! after kube-apiserver's bootstrap policy
//! (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`), with the
//! user-facing roles' rules narrowed to the kinds Flotilla serves.
//!
//! - `cluster-admin`: everything, bound to group `system:masters`.
//! - `admin`, `edit`, `view`: aggregated roles, as in Kubernetes, built from
//!   `system:aggregate-to-admin`, `-edit` and `-view` (and from any
//!   ClusterRole a user labels `rbac.authorization.k8s.io/aggregate-to-*`).
//!   `view` rolls up into `edit` and `edit` into `admin`. Unbound: grant
//!   them with a RoleBinding per namespace.
//! - `system:discovery` (discovery, OpenAPI, version, health),
//!   `system:basic-user` (self reviews) and `system:public-info-viewer`
//!   (version and health), bound to `system:authenticated`; the public-info
//!   viewer also to `system:unauthenticated`, as in Kubernetes.
//! - `system:node`: empty and unbound, as kube-apiserver leaves it unbound.
//!   The node authorizer decides every resource request of a device and
//!   refuses what it does not allow, so a rule here could not widen a
//!   device's reach; devices reach discovery and health through
//!   `system:authenticated`.

use std::collections::BTreeMap;

use flotilla_shared::model::{
    AggregationRule, ClusterRole, ClusterRoleBinding, LabelSelector, Object, ObjectMeta,
    PolicyRule, Resource, RoleRef, Subject,
};

use crate::api::user::{AUTHENTICATED, MASTERS};

/// The ClusterRole that lets bootstrap tokens enroll devices.
pub const DEVICE_BOOTSTRAPPER: &str = "flotilla:device-bootstrapper";
/// The label every object of the bootstrap policy carries.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
/// Its value.
pub const BOOTSTRAPPING_VALUE: &str = "rbac-defaults";
/// Tells a reconciler the object may be brought back to its default.
const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: strings(&[group]),
        resources: strings(resources),
        ..PolicyRule::default()
    }
}

fn url_rule(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: strings(urls),
        ..PolicyRule::default()
    }
}

fn metadata(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let mut all = BTreeMap::from([(
        BOOTSTRAPPING_LABEL.to_owned(),
        BOOTSTRAPPING_VALUE.to_owned(),
    )]);
    all.extend(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    ObjectMeta {
        name: name.to_owned(),
        labels: all,
        annotations: BTreeMap::from([(AUTOUPDATE_ANNOTATION.to_owned(), "true".to_owned())]),
        ..ObjectMeta::default()
    }
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> Object {
    Object::ClusterRole(ClusterRole {
        api_version: ClusterRole::API_VERSION.to_owned(),
        kind: ClusterRole::KIND.to_owned(),
        metadata: metadata(name, labels),
        rules,
        aggregation_rule: None,
    })
}

fn aggregated_role(name: &str, labels: &[(&str, &str)], aggregate_label: &str) -> Object {
    Object::ClusterRole(ClusterRole {
        api_version: ClusterRole::API_VERSION.to_owned(),
        kind: ClusterRole::KIND.to_owned(),
        metadata: metadata(name, labels),
        rules: Vec::new(),
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: vec![LabelSelector {
                match_labels: BTreeMap::from([(aggregate_label.to_owned(), "true".to_owned())]),
                ..LabelSelector::default()
            }],
        }),
    })
}

fn binding_to_groups(role: &str, groups: &[&str]) -> Object {
    Object::ClusterRoleBinding(ClusterRoleBinding {
        api_version: ClusterRoleBinding::API_VERSION.to_owned(),
        kind: ClusterRoleBinding::KIND.to_owned(),
        metadata: metadata(role, &[]),
        subjects: groups
            .iter()
            .map(|group| Subject {
                kind: "Group".to_owned(),
                api_group: RBAC_GROUP.to_owned(),
                name: (*group).to_owned(),
                namespace: String::new(),
            })
            .collect(),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_owned(),
            kind: ClusterRole::KIND.to_owned(),
            name: role.to_owned(),
        },
    })
}

/// The built-in ClusterRoles and ClusterRoleBindings, each labelled
/// `kubernetes.io/bootstrapping=rbac-defaults` and annotated
/// `rbac.authorization.kubernetes.io/autoupdate=true`. Roles come first, so
/// feeding them in order to an [`super::RbacPolicy`] never binds to a role
/// not yet known.
pub fn bootstrap_policy() -> Vec<Object> {
    let health = ["/livez", "/readyz", "/healthz", "/version", "/version/"];
    let mut discovery = health.to_vec();
    discovery.extend([
        "/openapi",
        "/openapi/*",
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
    ]);
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], "*", &["*"]), url_rule(&["*"], &["*"])],
        ),
        aggregated_role("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated_role("edit", &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        aggregated_role("view", &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["localsubjectaccessreviews"],
                ),
                rule(READ_WRITE, RBAC_GROUP, &["roles", "rolebindings"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            vec![
                rule(
                    READ,
                    "",
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(
                    WRITE,
                    "",
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                ),
                rule(&["create"], "", &["pods/eviction"]),
                rule(
                    WRITE,
                    "",
                    &["services", "services/proxy", "configmaps", "secrets"],
                ),
                rule(
                    WRITE,
                    "apps",
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                rule(WRITE, "batch", &["jobs"]),
                rule(READ_WRITE, "coordination.k8s.io", &["leases"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            vec![
                rule(
                    READ,
                    "",
                    &[
                        "pods",
                        "services",
                        "services/status",
                        "endpoints",
                        "configmaps",
                    ],
                ),
                rule(
                    READ,
                    "",
                    &["events", "pods/status", "pods/log", "namespaces/status"],
                ),
                // Reading namespaces at namespace scope is reading *this*
                // namespace: how a user finds the namespaces it may use.
                rule(READ, "", &["namespaces"]),
                rule(
                    READ,
                    "apps",
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/status",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/status",
                        "replicasets/scale",
                    ],
                ),
                rule(READ, "batch", &["jobs", "jobs/status"]),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![url_rule(&["get"], &discovery)],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    "authentication.k8s.io",
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![url_rule(&["get"], &health)],
        ),
        cluster_role("system:node", &[], Vec::new()),
        // Devices enroll with bootstrap tokens (Kubernetes' counterpart:
        // `system:node-bootstrapper`, creating CertificateSigningRequests).
        cluster_role(
            DEVICE_BOOTSTRAPPER,
            &[],
            vec![url_rule(&["post"], &[flotilla_shared::enroll::ENROLL_PATH])],
        ),
        binding_to_groups("cluster-admin", &[MASTERS]),
        binding_to_groups("system:discovery", &[AUTHENTICATED]),
        binding_to_groups("system:basic-user", &[AUTHENTICATED]),
        binding_to_groups(
            "system:public-info-viewer",
            &[AUTHENTICATED, UNAUTHENTICATED],
        ),
        binding_to_groups(DEVICE_BOOTSTRAPPER, &[crate::api::authn::BOOTSTRAPPERS]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::authz::{Attributes, Decision, RbacPolicy};
    use crate::api::user::UserInfo;

    fn policy() -> RbacPolicy {
        let mut policy = RbacPolicy::new();
        for object in bootstrap_policy() {
            policy.upsert(&object);
        }
        policy
    }

    #[test]
    fn every_object_is_labelled_and_every_binding_names_a_bootstrap_role() {
        let objects = bootstrap_policy();
        let roles: Vec<&str> = objects
            .iter()
            .filter(|o| matches!(o, Object::ClusterRole(_)))
            .map(|o| o.metadata().name.as_str())
            .collect();
        for object in &objects {
            let meta = object.metadata();
            assert_eq!(
                meta.labels.get(BOOTSTRAPPING_LABEL).map(String::as_str),
                Some(BOOTSTRAPPING_VALUE),
                "{}",
                meta.name
            );
            assert!(meta.namespace.is_empty(), "{}", meta.name);
            if let Object::ClusterRoleBinding(binding) = object {
                assert!(
                    roles.contains(&binding.role_ref.name.as_str()),
                    "{}",
                    meta.name
                );
                assert_eq!(binding.role_ref.kind, "ClusterRole");
            }
        }
        for name in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
            "system:node",
        ] {
            assert!(roles.contains(&name), "{name}");
        }
    }

    #[test]
    fn every_object_passes_validation_and_round_trips() {
        use flotilla_shared::manifest::{FieldValidation, decode_object};
        for object in bootstrap_policy() {
            let name = &object.metadata().name;
            let decoded =
                decode_object(object.to_value(), FieldValidation::Strict).expect("decodes");
            assert_eq!(decoded.object, object, "{name}");
            assert!(
                decoded.warnings.is_empty(),
                "{name}: {:?}",
                decoded.warnings
            );
            let validated = flotilla_shared::validation::validate(&object);
            assert!(validated.is_ok(), "{name}: {validated:?}");
        }
    }

    #[test]
    fn bootstrap_bindings_grant_what_kubernetes_grants() {
        let policy = policy();
        let anyone = UserInfo::new("alice", [AUTHENTICATED]);
        let anonymous = UserInfo::new("system:anonymous", [UNAUTHENTICATED]);
        let master = UserInfo::new("root", [MASTERS]);
        let bootstrapper = UserInfo::new(
            "system:bootstrap:abcdef",
            [crate::api::authn::BOOTSTRAPPERS, AUTHENTICATED],
        );
        let path = |p: &str| Attributes::non_resource("get", p);
        let cases: &[(&str, &UserInfo, Attributes, bool)] = &[
            ("discovery root", &anyone, path("/api"), true),
            ("core group version", &anyone, path("/api/v1"), true),
            ("groups", &anyone, path("/apis"), true),
            ("a group version", &anyone, path("/apis/apps/v1"), true),
            ("openapi", &anyone, path("/openapi/v3"), true),
            ("openapi root", &anyone, path("/openapi"), true),
            ("version", &anyone, path("/version"), true),
            ("health", &anyone, path("/healthz"), true),
            ("liveness", &anyone, path("/livez"), true),
            ("readiness", &anyone, path("/readyz"), true),
            ("metrics are not public", &anyone, path("/metrics"), false),
            (
                "discovery is read-only",
                &anyone,
                Attributes::non_resource("post", "/api"),
                false,
            ),
            (
                "self review",
                &anyone,
                Attributes::resource(
                    "create",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                ),
                true,
            ),
            (
                "no resources by default",
                &anyone,
                Attributes::resource("list", "", "pods", "default", ""),
                false,
            ),
            (
                "bootstrap tokens enroll devices",
                &bootstrapper,
                Attributes::non_resource("post", flotilla_shared::enroll::ENROLL_PATH),
                true,
            ),
            (
                "other users do not",
                &anyone,
                Attributes::non_resource("post", flotilla_shared::enroll::ENROLL_PATH),
                false,
            ),
            (
                "bootstrap tokens get nothing else",
                &bootstrapper,
                Attributes::resource("list", "", "nodes", "", ""),
                false,
            ),
            ("anonymous health", &anonymous, path("/healthz"), true),
            ("anonymous version", &anonymous, path("/version"), true),
            ("anonymous discovery", &anonymous, path("/api"), false),
            (
                "masters through the binding",
                &master,
                Attributes::resource("delete", "", "nodes", "", "gw-1"),
                true,
            ),
            ("masters on any path", &master, path("/metrics"), true),
        ];
        for (what, user, attrs, want) in cases {
            assert_eq!(
                policy.authorize(user, attrs) == Decision::Allow,
                *want,
                "{what}"
            );
        }
    }

    #[test]
    fn admin_edit_and_view_nest_through_aggregation() {
        let policy = policy();
        let mut policy = policy;
        for (user, role) in [("viewer", "view"), ("editor", "edit"), ("owner", "admin")] {
            policy.upsert(&Object::RoleBinding(flotilla_shared::model::RoleBinding {
                metadata: ObjectMeta {
                    name: format!("{user}-{role}"),
                    namespace: "team".into(),
                    ..ObjectMeta::default()
                },
                subjects: vec![Subject {
                    kind: "User".into(),
                    name: user.into(),
                    ..Subject::default()
                }],
                role_ref: RoleRef {
                    api_group: RBAC_GROUP.into(),
                    kind: "ClusterRole".into(),
                    name: role.into(),
                },
                ..Default::default()
            }));
        }
        let res = |verb: &str, group: &str, resource: &str| {
            Attributes::resource(verb, group, resource, "team", "x")
        };
        let cases: &[(&str, Attributes, [bool; 3])] = &[
            //                                               view   edit   admin
            ("read pods", res("get", "", "pods"), [true, true, true]),
            (
                "read pod logs",
                res("get", "", "pods").subresource("log"),
                [true, true, true],
            ),
            (
                "read deployments",
                res("list", "apps", "deployments"),
                [true, true, true],
            ),
            (
                "read secrets",
                res("get", "", "secrets"),
                [false, true, true],
            ),
            (
                "delete pods",
                res("delete", "", "pods"),
                [false, true, true],
            ),
            (
                "scale deployments",
                res("update", "apps", "deployments").subresource("scale"),
                [false, true, true],
            ),
            (
                "create jobs",
                Attributes::resource("create", "batch", "jobs", "team", ""),
                [false, true, true],
            ),
            (
                "write roles",
                res("update", RBAC_GROUP, "roles"),
                [false, false, true],
            ),
            (
                "write pod status",
                res("update", "", "pods").subresource("status"),
                [false, false, false],
            ),
        ];
        for (what, attrs, want) in cases {
            for (i, user) in ["viewer", "editor", "owner"].iter().enumerate() {
                let user = UserInfo::new(*user, [AUTHENTICATED]);
                assert_eq!(
                    policy.authorize(&user, attrs) == Decision::Allow,
                    want[i],
                    "{what} as {}",
                    user.name
                );
                let elsewhere = Attributes {
                    namespace: "other".into(),
                    ..attrs.clone()
                };
                assert_ne!(
                    policy.authorize(&user, &elsewhere),
                    Decision::Allow,
                    "{what} outside the namespace"
                );
            }
        }
    }
}
