//! Authorization: may this user do this to that? Kubernetes' RBAC and node
//! authorizers, as plain data structures the API server keeps up to date from
//! watches of the store and consults on every request.
//!
//! - [`RbacPolicy`] holds the Roles, ClusterRoles, RoleBindings and
//!   ClusterRoleBindings and answers as `plugin/pkg/auth/authorizer/rbac/rbac.go`
//!   with `pkg/registry/rbac/validation/rule.go` (which bindings apply) and
//!   `pkg/apis/rbac/v1/evaluation_helpers.go` (how a rule matches). ClusterRole
//!   aggregation (`pkg/controller/clusterroleaggregation`) is resolved on
//!   upsert instead of by a controller rewriting the role.
//! - [`NodeGraph`] is the node authorizer
//!   (`plugin/pkg/auth/authorizer/node/node_authorizer.go` and its graph),
//!   narrowed to what a Flotilla device does, with the name checks of the
//!   NodeRestriction admission plugin folded in.
//! - [`Authorizer`] chains them as kube-apiserver does with
//!   `--authorization-mode=Node,RBAC` behind its `system:masters` shortcut.
//! - [`forbidden_message`] words a refusal as kube-apiserver does, and
//!   [`bootstrap_policy`] is the built-in policy the hub writes at init
//!   (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`).
//!
//! ```
//! use flotilla_hub::api::authz::{Attributes, Authorizer, Decision, bootstrap_policy};
//! use flotilla_hub::api::user::UserInfo;
//!
//! let mut authorizer = Authorizer::new();
//! for object in bootstrap_policy() {
//!     authorizer.rbac.upsert(&object);
//! }
//! let alice = UserInfo::new("alice", ["system:authenticated"]);
//! let discovery = Attributes::non_resource("get", "/apis/apps/v1");
//! assert_eq!(authorizer.authorize(&alice, &discovery), Decision::Allow);
//! let list_pods = Attributes::resource("list", "", "pods", "default", "");
//! assert!(!authorizer.authorize(&alice, &list_pods).is_allowed());
//! ```

mod bootstrap;
mod message;
mod node;
mod rbac;

pub use bootstrap::{BOOTSTRAPPING_LABEL, BOOTSTRAPPING_VALUE, bootstrap_policy};
pub use message::forbidden_message;
pub use node::{NODE_LEASE_NAMESPACE, NodeGraph};
pub use rbac::{RbacPolicy, rule_allows};

use super::user::{MASTERS, UserInfo};

/// What a request asks to do (Kubernetes' `authorizer.Attributes`, as
/// `RequestInfoFactory` fills them in from the URL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get list watch create update patch delete deletecollection` for
    /// resource requests; the lower-case HTTP method for non-resource ones.
    pub verb: String,
    /// Whether the URL names a resource (`/api/v1/...`, `/apis/G/V/...`
    /// below the group version) rather than a path such as `/version`.
    pub resource_request: bool,
    /// `""` for the core group, `apps`, `rbac.authorization.k8s.io`, ...
    pub api_group: String,
    /// The plural: `pods`.
    pub resource: String,
    /// `status`, `scale`, `log`, or `""`.
    pub subresource: String,
    /// `""` for cluster-scoped and all-namespaces requests.
    pub namespace: String,
    /// The object's name from the URL; `""` for list, watch, create and
    /// deletecollection, except that a list or watch with a
    /// `metadata.name=X` field selector carries `X` (as kube-apiserver's
    /// `RequestInfoFactory` does), which is how a device watches its own Node.
    pub name: String,
    /// The URL path, for non-resource requests (`/api`, `/version`, `/healthz`).
    pub path: String,
    /// The exact value of a `spec.nodeName=` field selector of a list or watch.
    pub node_name_selector: Option<String>,
    /// For a create without a name in the URL: the `metadata.name` of the
    /// object in the body, once decoded. kube-apiserver authorizes a create
    /// before reading the body and leaves checking a device's Node and Lease
    /// names to its NodeRestriction admission plugin; here the node authorizer
    /// checks them itself and refuses such a create when this is `None`.
    /// RBAC never reads it: as in Kubernetes, `resourceNames` cannot restrict
    /// a create.
    pub create_name: Option<String>,
}

impl Attributes {
    /// A resource request. Add a subresource or selectors with the struct
    /// update syntax or [`Attributes::subresource`].
    pub fn resource(
        verb: impl Into<String>,
        api_group: impl Into<String>,
        resource: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: api_group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Attributes::default()
        }
    }

    /// A request for a path outside the resource tree.
    pub fn non_resource(verb: impl Into<String>, path: impl Into<String>) -> Self {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }

    /// The same request on a subresource (`status`).
    pub fn subresource(mut self, subresource: impl Into<String>) -> Self {
        self.subresource = subresource.into();
        self
    }

    /// The same list or watch restricted by `fieldSelector=spec.nodeName=NODE`.
    pub fn node_name_selector(mut self, node: impl Into<String>) -> Self {
        self.node_name_selector = Some(node.into());
        self
    }

    /// The same create with the name found in the body.
    pub fn create_name(mut self, name: impl Into<String>) -> Self {
        self.create_name = Some(name.into());
        self
    }

    /// `pods` or `pods/status`, as rules and messages spell it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// An authorizer's answer (Kubernetes' `authorizer.Decision` with its reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; `reason` is shown to the client after the forbidden message
    /// and never says more than the client may know.
    Deny {
        reason: String,
    },
    /// This authorizer does not decide; the next one in the chain does.
    NoOpinion,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// A denial with this reason.
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision::Deny {
            reason: reason.into(),
        }
    }
}

/// The API server's authorizer: `system:masters` may do anything, then the
/// node authorizer decides for device identities, then RBAC.
#[derive(Debug, Default)]
pub struct Authorizer {
    pub rbac: RbacPolicy,
    pub nodes: NodeGraph,
}

impl Authorizer {
    pub fn new() -> Self {
        Authorizer::default()
    }

    /// [`Decision::Allow`] or [`Decision::Deny`], never
    /// [`Decision::NoOpinion`]: a request no authorizer allows is refused, with
    /// the reason the last one to speak gave (often none).
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.in_group(MASTERS) {
            return Decision::Allow;
        }
        match self.nodes.authorize(user, attrs) {
            Decision::NoOpinion => {}
            decided => return decided,
        }
        match self.rbac.authorize(user, attrs) {
            Decision::NoOpinion => Decision::deny(""),
            decided => decided,
        }
    }
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{
        ClusterRole, ClusterRoleBinding, Object, ObjectMeta, Pod, PodSpec, PolicyRule, RoleRef,
        Subject,
    };

    use super::*;
    use crate::api::user::{AUTHENTICATED, NODES};

    fn authorizer() -> Authorizer {
        let mut authorizer = Authorizer::new();
        for object in bootstrap_policy() {
            authorizer.rbac.upsert(&object);
        }
        authorizer.nodes.upsert_pod(&Pod {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: "default".into(),
                ..ObjectMeta::default()
            },
            spec: PodSpec {
                node_name: "gw-1".into(),
                ..PodSpec::default()
            },
            ..Pod::default()
        });
        authorizer
    }

    fn node(name: &str) -> UserInfo {
        UserInfo::new(format!("system:node:{name}"), [NODES, AUTHENTICATED])
    }

    #[test]
    fn chain_decides_in_kubernetes_order() {
        let mut authorizer = authorizer();
        // A binding that would give every node identity every secret: the node
        // authorizer has already refused, so it widens nothing.
        authorizer.rbac.upsert(&Object::ClusterRole(ClusterRole {
            metadata: ObjectMeta {
                name: "secret-reader".into(),
                ..ObjectMeta::default()
            },
            rules: vec![PolicyRule {
                verbs: vec!["get".into()],
                api_groups: vec!["".into()],
                resources: vec!["secrets".into()],
                ..PolicyRule::default()
            }],
            ..ClusterRole::default()
        }));
        authorizer
            .rbac
            .upsert(&Object::ClusterRoleBinding(ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: "nodes-read-secrets".into(),
                    ..ObjectMeta::default()
                },
                subjects: vec![Subject {
                    kind: "Group".into(),
                    name: NODES.into(),
                    ..Subject::default()
                }],
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: "secret-reader".into(),
                },
                ..ClusterRoleBinding::default()
            }));
        let admin = UserInfo::new("admin", [MASTERS, AUTHENTICATED]);
        let alice = UserInfo::new("alice", [AUTHENTICATED]);
        let impostor = UserInfo::new("system:node:gw-1", [AUTHENTICATED]);
        let get_secret = Attributes::resource("get", "", "secrets", "default", "token");
        let get_pod = Attributes::resource("get", "", "pods", "default", "web");
        let cases: &[(&str, &UserInfo, Attributes, Decision)] = &[
            (
                "masters may do anything",
                &admin,
                Attributes::resource("deletecollection", "apps", "deployments", "", ""),
                Decision::Allow,
            ),
            (
                "masters may reach any path",
                &admin,
                Attributes::non_resource("get", "/metrics"),
                Decision::Allow,
            ),
            (
                "a device reads its own pod through the node authorizer",
                &node("gw-1"),
                get_pod.clone(),
                Decision::Allow,
            ),
            (
                "a device's refusal is final even when RBAC would allow",
                &node("gw-1"),
                get_secret.clone(),
                Decision::deny("no relationship found between node 'gw-1' and this object"),
            ),
            (
                "a device reaches discovery through RBAC",
                &node("gw-1"),
                Attributes::non_resource("get", "/api/v1"),
                Decision::Allow,
            ),
            (
                "a device cannot read metrics",
                &node("gw-1"),
                Attributes::non_resource("get", "/metrics"),
                Decision::deny(""),
            ),
            (
                "a node name outside system:nodes is an ordinary user",
                &impostor,
                get_pod.clone(),
                Decision::deny(""),
            ),
            (
                "an ordinary user without bindings is refused without a reason",
                &alice,
                get_pod,
                Decision::deny(""),
            ),
            (
                "an ordinary user gets discovery",
                &alice,
                Attributes::non_resource("get", "/apis"),
                Decision::Allow,
            ),
            (
                "an ordinary user gets health",
                &alice,
                Attributes::non_resource("get", "/healthz"),
                Decision::Allow,
            ),
        ];
        for (what, user, attrs, want) in cases {
            assert_eq!(&authorizer.authorize(user, attrs), want, "{what}");
        }
    }

    #[test]
    fn attribute_builders_fill_the_request_shape() {
        let attrs = Attributes::resource("update", "", "pods", "default", "web")
            .subresource("status")
            .node_name_selector("gw-1")
            .create_name("x");
        assert!(attrs.resource_request);
        assert_eq!(attrs.combined_resource(), "pods/status");
        assert_eq!(attrs.node_name_selector.as_deref(), Some("gw-1"));
        assert_eq!(attrs.create_name.as_deref(), Some("x"));
        let path = Attributes::non_resource("get", "/version");
        assert!(!path.resource_request);
        assert_eq!(path.path, "/version");
        assert_eq!(
            Attributes::resource("get", "", "pods", "", "").combined_resource(),
            "pods"
        );
    }
}
