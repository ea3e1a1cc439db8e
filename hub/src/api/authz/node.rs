//! The node authorizer: what a device (user `system:node:NAME` in group
//! `system:nodes`) may do, from a graph of which pods are bound to which
//! node and which ConfigMaps and Secrets those pods use.
//!
//! Mirrors `plugin/pkg/auth/authorizer/node/node_authorizer.go` and its
//! `graph_populator.go`, narrowed to what a Flotilla device does, and with
//! the object-name checks that kube-apiserver leaves to its NodeRestriction
//! admission plugin made here. A device may:
//!
//! - get, create, update and patch its own Node, and get, update and patch
//!   its `nodes/status`; list and watch nodes only when the request carries
//!   its own name (a `metadata.name=NAME` field selector, which the server
//!   puts in [`Attributes::name`] as kube-apiserver's `RequestInfoFactory`
//!   does), so one device cannot enumerate the fleet;
//! - get, create, update, patch and delete its Lease: `leases` of
//!   `coordination.k8s.io` in namespace `kube-node-lease` named like the node;
//! - get and delete pods bound to it (delete completes a graceful deletion),
//!   list and watch pods only with the field selector `spec.nodeName=NAME`,
//!   and update and patch the `status` of pods bound to it;
//! - get the ConfigMaps and Secrets those pods use (volumes, projected
//!   volume sources, `env[].valueFrom`, `envFrom`, `imagePullSecrets`), and
//!   list or watch one of them by name, as Kubernetes allows for a kubelet
//!   watching a single Secret;
//! - create, update and patch events in any namespace.
//!
//! Creating a Node or Lease is checked against [`Attributes::create_name`].
//! Every other resource request of a device is denied with a reason naming
//! the node, so no RBAC binding can widen a device's reach; non-resource
//! requests (discovery, `/version`, `/healthz`) are left to RBAC.
//!
//! The graph follows spec.nodeName: upserting a pod moves its edges to its
//! current node, and an unbound or removed pod has none.

use std::collections::{BTreeSet, HashMap, HashSet};

use flotilla_shared::model::Pod;

use super::{Attributes, Decision};
use crate::api::user::UserInfo;

/// The namespace of the devices' heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// What one bound pod gives its node access to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PodEdges {
    node: String,
    config_maps: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

impl PodEdges {
    /// `None` for a pod not bound to a node.
    fn of(pod: &Pod) -> Option<Self> {
        let spec = &pod.spec;
        if spec.node_name.is_empty() {
            return None;
        }
        let references = spec.references();
        Some(PodEdges {
            node: spec.node_name.clone(),
            config_maps: references.config_maps,
            secrets: references.secrets,
        })
    }
}

/// Names in one namespace, counted by how many pods reference them.
type Counted = HashMap<String, HashMap<String, usize>>;

/// Everything reachable from one node.
#[derive(Debug, Default)]
struct NodeEdges {
    /// Pod names by namespace.
    pods: HashMap<String, HashSet<String>>,
    config_maps: Counted,
    secrets: Counted,
}

impl NodeEdges {
    fn add(&mut self, namespace: &str, name: &str, edges: &PodEdges) {
        self.pods
            .entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned());
        for (counted, names) in [
            (&mut self.config_maps, &edges.config_maps),
            (&mut self.secrets, &edges.secrets),
        ] {
            let in_namespace = counted.entry(namespace.to_owned()).or_default();
            for referenced in names {
                *in_namespace.entry(referenced.clone()).or_default() += 1;
            }
        }
    }

    fn remove(&mut self, namespace: &str, name: &str, edges: &PodEdges) {
        if let Some(pods) = self.pods.get_mut(namespace) {
            pods.remove(name);
            if pods.is_empty() {
                self.pods.remove(namespace);
            }
        }
        for (counted, names) in [
            (&mut self.config_maps, &edges.config_maps),
            (&mut self.secrets, &edges.secrets),
        ] {
            let Some(in_namespace) = counted.get_mut(namespace) else {
                continue;
            };
            for referenced in names {
                if let Some(count) = in_namespace.get_mut(referenced) {
                    *count -= 1;
                    if *count == 0 {
                        in_namespace.remove(referenced);
                    }
                }
            }
            if in_namespace.is_empty() {
                counted.remove(namespace);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.config_maps.is_empty() && self.secrets.is_empty()
    }

    fn has_pod(&self, namespace: &str, name: &str) -> bool {
        self.pods
            .get(namespace)
            .is_some_and(|pods| pods.contains(name))
    }

    fn references(counted: &Counted, namespace: &str, name: &str) -> bool {
        counted
            .get(namespace)
            .is_some_and(|names| names.contains_key(name))
    }
}

/// The node authorizer's graph, fed with pods as the store's watches
/// deliver them.
#[derive(Debug, Default)]
pub struct NodeGraph {
    /// Bound pods by namespace, then name.
    pods: HashMap<String, HashMap<String, PodEdges>>,
    nodes: HashMap<String, NodeEdges>,
}

impl NodeGraph {
    pub fn new() -> Self {
        NodeGraph::default()
    }

    /// Adds or replaces a pod: its edges follow its current `spec.nodeName`
    /// and references, and an unbound pod has none.
    pub fn upsert_pod(&mut self, pod: &Pod) {
        let (namespace, name) = (&pod.metadata.namespace, &pod.metadata.name);
        let Some(edges) = PodEdges::of(pod) else {
            self.remove_pod(namespace, name);
            return;
        };
        let unchanged = self
            .pods
            .get(namespace)
            .and_then(|pods| pods.get(name))
            .is_some_and(|old| *old == edges);
        if unchanged {
            return;
        }
        self.remove_pod(namespace, name);
        self.nodes
            .entry(edges.node.clone())
            .or_default()
            .add(namespace, name, &edges);
        self.pods
            .entry(namespace.clone())
            .or_default()
            .insert(name.clone(), edges);
    }

    /// Forgets a pod and what it gave its node access to.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        let Some(pods) = self.pods.get_mut(namespace) else {
            return;
        };
        let Some(edges) = pods.remove(name) else {
            return;
        };
        if pods.is_empty() {
            self.pods.remove(namespace);
        }
        if let Some(node) = self.nodes.get_mut(&edges.node) {
            node.remove(namespace, name, &edges);
            if node.is_empty() {
                self.nodes.remove(&edges.node);
            }
        }
    }

    /// [`Decision::NoOpinion`] for users that are not devices and for
    /// non-resource requests; otherwise [`Decision::Allow`] or
    /// [`Decision::Deny`] with a reason naming the node.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let Some(node) = user.node_name() else {
            return Decision::NoOpinion;
        };
        if !attrs.resource_request {
            return Decision::NoOpinion;
        }
        let request = Request { node, attrs };
        match (attrs.api_group.as_str(), attrs.resource.as_str()) {
            ("", "nodes") => request.node_object(),
            ("coordination.k8s.io", "leases") => request.lease(),
            ("", "pods") => request.pod(self.nodes.get(node)),
            ("", "configmaps") => {
                request.referenced(self.nodes.get(node).map(|edges| &edges.config_maps))
            }
            ("", "secrets") => request.referenced(self.nodes.get(node).map(|edges| &edges.secrets)),
            ("", "events") | ("events.k8s.io", "events") => request.event(),
            _ => Decision::deny(format!(
                "node '{node}' may only use its own Node and Lease, the pods bound to it \
                 and the ConfigMaps and Secrets they use, and events"
            )),
        }
    }
}

/// One device request being decided.
struct Request<'a> {
    node: &'a str,
    attrs: &'a Attributes,
}

impl Request<'_> {
    fn verb_in(&self, verbs: &[&str]) -> bool {
        verbs.contains(&self.attrs.verb.as_str())
    }

    /// The object's name: from the URL, or from the body for a create.
    fn target_name(&self) -> &str {
        let attrs = self.attrs;
        if attrs.verb == "create" && attrs.name.is_empty() {
            attrs.create_name.as_deref().unwrap_or("")
        } else {
            &attrs.name
        }
    }

    fn no_relationship(&self) -> Decision {
        Decision::deny(format!(
            "no relationship found between node '{}' and this object",
            self.node
        ))
    }

    fn node_object(&self) -> Decision {
        let node = self.node;
        let verbs_ok = match self.attrs.subresource.as_str() {
            "" => self.verb_in(&["get", "list", "watch", "create", "update", "patch"]),
            "status" => self.verb_in(&["get", "update", "patch"]),
            _ => false,
        };
        if !verbs_ok {
            return Decision::deny(format!(
                "node '{node}' can only get, list, watch, create, update and patch its own Node \
                 and get, update and patch its status"
            ));
        }
        if self.target_name() != node {
            return Decision::deny(match self.attrs.verb.as_str() {
                "list" | "watch" => format!(
                    "node '{node}' can only {} its own Node, with the field selector metadata.name={node}",
                    self.attrs.verb
                ),
                _ => format!("node '{node}' can only access its own Node"),
            });
        }
        Decision::Allow
    }

    fn lease(&self) -> Decision {
        let node = self.node;
        if !self.attrs.subresource.is_empty()
            || !self.verb_in(&["get", "create", "update", "patch", "delete"])
        {
            return Decision::deny(format!(
                "node '{node}' can only get, create, update, patch, or delete a node lease"
            ));
        }
        if self.attrs.namespace != NODE_LEASE_NAMESPACE {
            return Decision::deny(format!(
                "node '{node}' can only access leases in the \"{NODE_LEASE_NAMESPACE}\" system namespace"
            ));
        }
        if self.target_name() != node {
            return Decision::deny(format!(
                "node '{node}' can only access the node lease with its own name"
            ));
        }
        Decision::Allow
    }

    fn pod(&self, edges: Option<&NodeEdges>) -> Decision {
        let node = self.node;
        let attrs = self.attrs;
        let bound = || {
            !attrs.name.is_empty()
                && edges.is_some_and(|edges| edges.has_pod(&attrs.namespace, &attrs.name))
        };
        match (attrs.subresource.as_str(), attrs.verb.as_str()) {
            ("", "get" | "delete") | ("status", "update" | "patch") => {
                if bound() {
                    Decision::Allow
                } else {
                    self.no_relationship()
                }
            }
            ("", "list" | "watch") => {
                if attrs.node_name_selector.as_deref() == Some(node) {
                    Decision::Allow
                } else {
                    Decision::deny(format!(
                        "node '{node}' can only list and watch pods with the field selector \
                         spec.nodeName={node}"
                    ))
                }
            }
            _ => Decision::deny(format!(
                "node '{node}' can only get, list, watch and delete the pods bound to it \
                 and update and patch their status"
            )),
        }
    }

    /// ConfigMaps or Secrets, by what the node's pods reference.
    fn referenced(&self, counted: Option<&Counted>) -> Decision {
        let node = self.node;
        let attrs = self.attrs;
        let resource = &attrs.resource;
        if !self.verb_in(&["get", "list", "watch"]) {
            return Decision::deny(format!(
                "node '{node}' can only read the {resource} used by the pods bound to it"
            ));
        }
        if !attrs.subresource.is_empty() {
            return Decision::deny(format!(
                "node '{node}' cannot read a subresource of {resource}"
            ));
        }
        if attrs.namespace.is_empty() || attrs.name.is_empty() {
            return Decision::deny(format!(
                "node '{node}' can only read {resource} one at a time, by namespace and name"
            ));
        }
        if counted.is_some_and(|c| NodeEdges::references(c, &attrs.namespace, &attrs.name)) {
            Decision::Allow
        } else {
            self.no_relationship()
        }
    }

    fn event(&self) -> Decision {
        if self.attrs.subresource.is_empty() && self.verb_in(&["create", "update", "patch"]) {
            Decision::Allow
        } else {
            Decision::deny(format!(
                "node '{}' can only create, update and patch events",
                self.node
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::user::{AUTHENTICATED, NODES};

    fn pod(namespace: &str, name: &str, node: &str, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["nodeName"] = json!(node);
        serde_json::from_value(json!({
            "metadata": {"namespace": namespace, "name": name},
            "spec": spec,
        }))
        .expect("test pod decodes")
    }

    /// A pod on gw-1 using a ConfigMap and a Secret in every way a pod can.
    fn full_pod() -> Pod {
        pod(
            "default",
            "web",
            "gw-1",
            json!({
                "volumes": [
                    {"name": "a", "configMap": {"name": "cm-volume"}},
                    {"name": "b", "secret": {"secretName": "secret-volume"}},
                    {"name": "c", "projected": {"sources": [
                        {"configMap": {"name": "cm-projected"}},
                        {"secret": {"name": "secret-projected"}},
                        {"serviceAccountToken": {"path": "token"}},
                    ]}},
                    {"name": "d", "emptyDir": {}},
                ],
                "initContainers": [{
                    "name": "init", "image": "busybox",
                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "secret-init-env", "key": "k"}}}],
                }],
                "containers": [{
                    "name": "app", "image": "nginx",
                    "env": [
                        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "secret-env", "key": "k"}}},
                        {"name": "C", "value": "plain"},
                    ],
                    "envFrom": [
                        {"configMapRef": {"name": "cm-env-from"}},
                        {"secretRef": {"name": "secret-env-from"}},
                    ],
                }],
                "imagePullSecrets": [{"name": "secret-pull"}],
            }),
        )
    }

    fn device(name: &str) -> UserInfo {
        UserInfo::new(format!("system:node:{name}"), [NODES, AUTHENTICATED])
    }

    fn res(verb: &str, group: &str, resource: &str, namespace: &str, name: &str) -> Attributes {
        Attributes::resource(verb, group, resource, namespace, name)
    }

    fn graph() -> NodeGraph {
        let mut graph = NodeGraph::new();
        graph.upsert_pod(&full_pod());
        graph.upsert_pod(&pod(
            "other",
            "db",
            "gw-2",
            json!({
                "volumes": [{"name": "s", "secret": {"secretName": "db-password"}}],
                "containers": [{"name": "db", "image": "postgres"}],
            }),
        ));
        graph.upsert_pod(&pod(
            "default",
            "pending",
            "",
            json!({
                "volumes": [{"name": "s", "secret": {"secretName": "pending-secret"}}],
                "containers": [{"name": "p", "image": "x"}],
            }),
        ));
        graph
    }

    const ALLOW: Option<&str> = None;

    fn deny(reason: &str) -> Option<&str> {
        Some(reason)
    }

    #[test]
    fn devices_reach_only_what_is_theirs() {
        let graph = graph();
        let gw1 = device("gw-1");
        let no_rel = "no relationship found between node 'gw-1' and this object";
        let pods_only = "node 'gw-1' can only get, list, watch and delete the pods bound to it and update and patch their status";
        let own_node = "node 'gw-1' can only get, list, watch, create, update and patch its own Node and get, update and patch its status";
        let lease_verbs = "node 'gw-1' can only get, create, update, patch, or delete a node lease";
        let elsewhere = "node 'gw-1' may only use its own Node and Lease, the pods bound to it and the ConfigMaps and Secrets they use, and events";
        let lease = |verb: &str, name: &str| {
            res(
                verb,
                "coordination.k8s.io",
                "leases",
                NODE_LEASE_NAMESPACE,
                name,
            )
        };
        let cases: Vec<(&str, Attributes, Option<&str>)> = vec![
            // Its Node.
            ("get own node", res("get", "", "nodes", "", "gw-1"), ALLOW),
            (
                "update own node",
                res("update", "", "nodes", "", "gw-1"),
                ALLOW,
            ),
            (
                "patch own node",
                res("patch", "", "nodes", "", "gw-1"),
                ALLOW,
            ),
            (
                "watch own node by metadata.name",
                res("watch", "", "nodes", "", "gw-1"),
                ALLOW,
            ),
            (
                "list own node by metadata.name",
                res("list", "", "nodes", "", "gw-1"),
                ALLOW,
            ),
            (
                "create own node",
                res("create", "", "nodes", "", "").create_name("gw-1"),
                ALLOW,
            ),
            (
                "get own node status",
                res("get", "", "nodes", "", "gw-1").subresource("status"),
                ALLOW,
            ),
            (
                "update own node status",
                res("update", "", "nodes", "", "gw-1").subresource("status"),
                ALLOW,
            ),
            (
                "patch own node status",
                res("patch", "", "nodes", "", "gw-1").subresource("status"),
                ALLOW,
            ),
            (
                "get another node",
                res("get", "", "nodes", "", "gw-2"),
                deny("node 'gw-1' can only access its own Node"),
            ),
            (
                "patch another node's status",
                res("patch", "", "nodes", "", "gw-2").subresource("status"),
                deny("node 'gw-1' can only access its own Node"),
            ),
            (
                "create another node",
                res("create", "", "nodes", "", "").create_name("gw-2"),
                deny("node 'gw-1' can only access its own Node"),
            ),
            (
                "create a node with its name unknown",
                res("create", "", "nodes", "", ""),
                deny("node 'gw-1' can only access its own Node"),
            ),
            (
                "list every node",
                res("list", "", "nodes", "", ""),
                deny(
                    "node 'gw-1' can only list its own Node, with the field selector metadata.name=gw-1",
                ),
            ),
            (
                "watch every node",
                res("watch", "", "nodes", "", ""),
                deny(
                    "node 'gw-1' can only watch its own Node, with the field selector metadata.name=gw-1",
                ),
            ),
            (
                "delete own node",
                res("delete", "", "nodes", "", "gw-1"),
                deny(own_node),
            ),
            (
                "deletecollection nodes",
                res("deletecollection", "", "nodes", "", ""),
                deny(own_node),
            ),
            (
                "proxy to own node",
                res("get", "", "nodes", "", "gw-1").subresource("proxy"),
                deny(own_node),
            ),
            (
                "delete own node status",
                res("delete", "", "nodes", "", "gw-1").subresource("status"),
                deny(own_node),
            ),
            // Its Lease.
            ("get own lease", lease("get", "gw-1"), ALLOW),
            (
                "create own lease",
                lease("create", "").create_name("gw-1"),
                ALLOW,
            ),
            ("update own lease", lease("update", "gw-1"), ALLOW),
            ("patch own lease", lease("patch", "gw-1"), ALLOW),
            ("delete own lease", lease("delete", "gw-1"), ALLOW),
            (
                "get another lease",
                lease("get", "gw-2"),
                deny("node 'gw-1' can only access the node lease with its own name"),
            ),
            (
                "create another lease",
                lease("create", "").create_name("gw-2"),
                deny("node 'gw-1' can only access the node lease with its own name"),
            ),
            (
                "create a lease with its name unknown",
                lease("create", ""),
                deny("node 'gw-1' can only access the node lease with its own name"),
            ),
            ("list leases", lease("list", ""), deny(lease_verbs)),
            ("watch leases", lease("watch", ""), deny(lease_verbs)),
            (
                "lease subresource",
                lease("get", "gw-1").subresource("status"),
                deny(lease_verbs),
            ),
            (
                "lease in another namespace",
                res(
                    "get",
                    "coordination.k8s.io",
                    "leases",
                    "kube-system",
                    "gw-1",
                ),
                deny(
                    "node 'gw-1' can only access leases in the \"kube-node-lease\" system namespace",
                ),
            ),
            (
                "leases of another group",
                res("get", "", "leases", NODE_LEASE_NAMESPACE, "gw-1"),
                deny(elsewhere),
            ),
            // Its pods.
            (
                "get a bound pod",
                res("get", "", "pods", "default", "web"),
                ALLOW,
            ),
            (
                "delete a bound pod",
                res("delete", "", "pods", "default", "web"),
                ALLOW,
            ),
            (
                "update a bound pod's status",
                res("update", "", "pods", "default", "web").subresource("status"),
                ALLOW,
            ),
            (
                "patch a bound pod's status",
                res("patch", "", "pods", "default", "web").subresource("status"),
                ALLOW,
            ),
            (
                "list pods on this node",
                res("list", "", "pods", "", "").node_name_selector("gw-1"),
                ALLOW,
            ),
            (
                "watch pods on this node in a namespace",
                res("watch", "", "pods", "default", "").node_name_selector("gw-1"),
                ALLOW,
            ),
            (
                "get another node's pod",
                res("get", "", "pods", "other", "db"),
                deny(no_rel),
            ),
            (
                "get an unbound pod",
                res("get", "", "pods", "default", "pending"),
                deny(no_rel),
            ),
            (
                "get a pod that does not exist",
                res("get", "", "pods", "default", "ghost"),
                deny(no_rel),
            ),
            (
                "same name in another namespace",
                res("get", "", "pods", "other", "web"),
                deny(no_rel),
            ),
            (
                "delete another node's pod",
                res("delete", "", "pods", "other", "db"),
                deny(no_rel),
            ),
            (
                "patch another node's pod status",
                res("patch", "", "pods", "other", "db").subresource("status"),
                deny(no_rel),
            ),
            (
                "list every pod",
                res("list", "", "pods", "", ""),
                deny(
                    "node 'gw-1' can only list and watch pods with the field selector spec.nodeName=gw-1",
                ),
            ),
            (
                "watch another node's pods",
                res("watch", "", "pods", "", "").node_name_selector("gw-2"),
                deny(
                    "node 'gw-1' can only list and watch pods with the field selector spec.nodeName=gw-1",
                ),
            ),
            (
                "create a pod",
                res("create", "", "pods", "default", "").create_name("mirror"),
                deny(pods_only),
            ),
            (
                "update a bound pod",
                res("update", "", "pods", "default", "web"),
                deny(pods_only),
            ),
            (
                "patch a bound pod",
                res("patch", "", "pods", "default", "web"),
                deny(pods_only),
            ),
            (
                "deletecollection pods",
                res("deletecollection", "", "pods", "default", ""),
                deny(pods_only),
            ),
            (
                "get a bound pod's status",
                res("get", "", "pods", "default", "web").subresource("status"),
                deny(pods_only),
            ),
            (
                "exec into a bound pod",
                res("create", "", "pods", "default", "web").subresource("exec"),
                deny(pods_only),
            ),
            (
                "read a bound pod's log",
                res("get", "", "pods", "default", "web").subresource("log"),
                deny(pods_only),
            ),
            // Its ConfigMaps and Secrets.
            (
                "configMap volume",
                res("get", "", "configmaps", "default", "cm-volume"),
                ALLOW,
            ),
            (
                "projected configMap",
                res("get", "", "configmaps", "default", "cm-projected"),
                ALLOW,
            ),
            (
                "configMapKeyRef",
                res("get", "", "configmaps", "default", "cm-env"),
                ALLOW,
            ),
            (
                "envFrom configMapRef",
                res("get", "", "configmaps", "default", "cm-env-from"),
                ALLOW,
            ),
            (
                "secret volume",
                res("get", "", "secrets", "default", "secret-volume"),
                ALLOW,
            ),
            (
                "projected secret",
                res("get", "", "secrets", "default", "secret-projected"),
                ALLOW,
            ),
            (
                "secretKeyRef",
                res("get", "", "secrets", "default", "secret-env"),
                ALLOW,
            ),
            (
                "secretKeyRef of an init container",
                res("get", "", "secrets", "default", "secret-init-env"),
                ALLOW,
            ),
            (
                "envFrom secretRef",
                res("get", "", "secrets", "default", "secret-env-from"),
                ALLOW,
            ),
            (
                "imagePullSecrets",
                res("get", "", "secrets", "default", "secret-pull"),
                ALLOW,
            ),
            (
                "watch one referenced secret by name",
                res("watch", "", "secrets", "default", "secret-volume"),
                ALLOW,
            ),
            (
                "list one referenced configmap by name",
                res("list", "", "configmaps", "default", "cm-env"),
                ALLOW,
            ),
            (
                "a secret as a configmap",
                res("get", "", "configmaps", "default", "secret-volume"),
                deny(no_rel),
            ),
            (
                "a configmap as a secret",
                res("get", "", "secrets", "default", "cm-volume"),
                deny(no_rel),
            ),
            (
                "a referenced name in another namespace",
                res("get", "", "secrets", "other", "secret-volume"),
                deny(no_rel),
            ),
            (
                "another node's secret",
                res("get", "", "secrets", "other", "db-password"),
                deny(no_rel),
            ),
            (
                "an unbound pod's secret",
                res("get", "", "secrets", "default", "pending-secret"),
                deny(no_rel),
            ),
            (
                "list secrets",
                res("list", "", "secrets", "default", ""),
                deny("node 'gw-1' can only read secrets one at a time, by namespace and name"),
            ),
            (
                "watch configmaps everywhere",
                res("watch", "", "configmaps", "", ""),
                deny("node 'gw-1' can only read configmaps one at a time, by namespace and name"),
            ),
            (
                "update a referenced secret",
                res("update", "", "secrets", "default", "secret-volume"),
                deny("node 'gw-1' can only read the secrets used by the pods bound to it"),
            ),
            (
                "create a configmap",
                res("create", "", "configmaps", "default", "").create_name("x"),
                deny("node 'gw-1' can only read the configmaps used by the pods bound to it"),
            ),
            (
                "secret subresource",
                res("get", "", "secrets", "default", "secret-volume").subresource("x"),
                deny("node 'gw-1' cannot read a subresource of secrets"),
            ),
            // Events.
            (
                "create an event",
                res("create", "", "events", "default", ""),
                ALLOW,
            ),
            (
                "create an event anywhere",
                res("create", "", "events", "kube-system", ""),
                ALLOW,
            ),
            (
                "patch an event",
                res("patch", "", "events", "default", "web.1"),
                ALLOW,
            ),
            (
                "update an event",
                res("update", "", "events", "default", "web.1"),
                ALLOW,
            ),
            (
                "create an events.k8s.io event",
                res("create", "events.k8s.io", "events", "default", ""),
                ALLOW,
            ),
            (
                "read events",
                res("list", "", "events", "default", ""),
                deny("node 'gw-1' can only create, update and patch events"),
            ),
            (
                "delete an event",
                res("delete", "", "events", "default", "web.1"),
                deny("node 'gw-1' can only create, update and patch events"),
            ),
            // Everything else.
            (
                "services",
                res("list", "", "services", "default", ""),
                deny(elsewhere),
            ),
            (
                "deployments",
                res("get", "apps", "deployments", "default", "web"),
                deny(elsewhere),
            ),
            (
                "cluster roles",
                res(
                    "create",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "",
                )
                .create_name("x"),
                deny(elsewhere),
            ),
            (
                "namespaces",
                res("get", "", "namespaces", "", "default"),
                deny(elsewhere),
            ),
        ];
        for (what, attrs, want) in cases {
            let want = match want {
                None => Decision::Allow,
                Some(reason) => Decision::deny(reason),
            };
            assert_eq!(graph.authorize(&gw1, &attrs), want, "{what}");
        }
    }

    #[test]
    fn only_device_resource_requests_are_decided_here() {
        let graph = graph();
        let get_secret = res("get", "", "secrets", "default", "secret-volume");
        let cases: &[(&str, UserInfo, Attributes)] = &[
            (
                "an ordinary user",
                UserInfo::new("alice", [AUTHENTICATED]),
                get_secret.clone(),
            ),
            (
                "a node name outside system:nodes",
                UserInfo::new("system:node:gw-1", [AUTHENTICATED]),
                get_secret.clone(),
            ),
            (
                "system:nodes without a node name",
                UserInfo::new("system:node:", [NODES]),
                get_secret.clone(),
            ),
            (
                "a device on a path",
                device("gw-1"),
                Attributes::non_resource("get", "/version"),
            ),
        ];
        for (what, user, attrs) in cases {
            assert_eq!(graph.authorize(user, attrs), Decision::NoOpinion, "{what}");
        }
    }

    #[test]
    fn a_pod_moving_to_another_node_moves_its_access() {
        let mut graph = graph();
        let (gw1, gw3) = (device("gw-1"), device("gw-3"));
        let get_pod = res("get", "", "pods", "default", "web");
        let get_secret = res("get", "", "secrets", "default", "secret-env");
        assert!(graph.authorize(&gw1, &get_secret).is_allowed());
        assert!(!graph.authorize(&gw3, &get_secret).is_allowed());

        let mut moved = full_pod();
        moved.spec.node_name = "gw-3".into();
        graph.upsert_pod(&moved);
        assert!(
            !graph.authorize(&gw1, &get_pod).is_allowed(),
            "old node loses the pod"
        );
        assert!(
            !graph.authorize(&gw1, &get_secret).is_allowed(),
            "old node loses the secret"
        );
        assert!(
            graph.authorize(&gw3, &get_pod).is_allowed(),
            "new node gets the pod"
        );
        assert!(
            graph.authorize(&gw3, &get_secret).is_allowed(),
            "new node gets the secret"
        );
        assert!(
            !graph.nodes.contains_key("gw-1"),
            "nothing is left for gw-1"
        );

        // Unbinding (nodeName cleared) removes its edges too.
        moved.spec.node_name.clear();
        graph.upsert_pod(&moved);
        assert!(!graph.authorize(&gw3, &get_secret).is_allowed());
    }

    #[test]
    fn removing_a_pod_revokes_its_secrets_unless_another_pod_uses_them() {
        let mut graph = graph();
        let gw1 = device("gw-1");
        let shares = pod(
            "default",
            "sidecar",
            "gw-1",
            json!({
                "volumes": [{"name": "s", "secret": {"secretName": "secret-volume"}}],
                "containers": [{"name": "c", "image": "x"}],
            }),
        );
        graph.upsert_pod(&shares);
        let shared = res("get", "", "secrets", "default", "secret-volume");
        let only_web = res("get", "", "secrets", "default", "secret-pull");

        graph.remove_pod("default", "web");
        assert!(
            graph.authorize(&gw1, &shared).is_allowed(),
            "still used by the sidecar pod"
        );
        assert!(
            !graph.authorize(&gw1, &only_web).is_allowed(),
            "used only by the removed pod"
        );
        assert!(
            !graph
                .authorize(&gw1, &res("get", "", "pods", "default", "web"))
                .is_allowed()
        );

        graph.remove_pod("default", "sidecar");
        assert!(
            !graph.authorize(&gw1, &shared).is_allowed(),
            "no pod uses it any more"
        );
        assert!(!graph.nodes.contains_key("gw-1"));
        graph.remove_pod("default", "sidecar");
        graph.remove_pod("nowhere", "x");
    }

    #[test]
    fn an_updated_pod_drops_references_it_no_longer_has() {
        let mut graph = graph();
        let gw1 = device("gw-1");
        let mut changed = full_pod();
        changed.spec.image_pull_secrets.clear();
        graph.upsert_pod(&changed);
        assert!(
            !graph
                .authorize(&gw1, &res("get", "", "secrets", "default", "secret-pull"))
                .is_allowed()
        );
        assert!(
            graph
                .authorize(&gw1, &res("get", "", "secrets", "default", "secret-volume"))
                .is_allowed()
        );
        // Upserting the same pod twice counts its references once.
        graph.upsert_pod(&changed);
        graph.remove_pod("default", "web");
        assert!(
            !graph
                .authorize(&gw1, &res("get", "", "secrets", "default", "secret-volume"))
                .is_allowed()
        );
    }
}
