//! What the gateway knows of the store (from its watches) and has published,
//! and which devices' desired states therefore changed.
//!
//! A pure core in the STYLE.md sense: [`Fleet::changed`] takes the objects
//! the watches deliver (Nodes, Pods, ConfigMaps, Secrets) and marks the
//! nodes whose state may differ; [`Fleet::updates`] computes those states
//! and answers only the ones that differ from what was last published for
//! the node, so a device hears from the hub only when something it runs
//! changed (a new store revision alone is no reason); [`Fleet::published`]
//! records what the broker accepted. The transport around it publishes
//! retained at QoS 1.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_shared::model::{ConfigMap, Node, Object, Pod, Secret};
use flotilla_shared::wire::DesiredState;

use super::desired::{self, Referenced, Unresolved};

/// (namespace, name).
type Key = (String, String);

/// The gateway's view of the fleet.
#[derive(Debug, Default)]
pub struct Fleet {
    nodes: BTreeMap<String, Node>,
    /// Bound pods only.
    pods: BTreeMap<Key, Pod>,
    by_node: BTreeMap<String, BTreeSet<Key>>,
    /// Pod uid → key, for the statuses devices report by uid.
    uids: BTreeMap<String, Key>,
    objects: Objects,
    /// (namespace, ConfigMap name) → the pods that use it.
    config_map_users: BTreeMap<Key, BTreeSet<Key>>,
    secret_users: BTreeMap<Key, BTreeSet<Key>>,
    published: BTreeMap<String, DesiredState>,
    dirty: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Objects {
    config_maps: BTreeMap<Key, ConfigMap>,
    secrets: BTreeMap<Key, Secret>,
}

impl Referenced for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.get(&(namespace.to_owned(), name.to_owned()))
    }
}

/// What [`Fleet::updates`] answers for one node.
#[derive(Debug)]
pub struct Update {
    pub node: String,
    /// To publish (retained) on the node's desired topic; `None` when the
    /// state did not change and only `unresolved` is news.
    pub state: Option<DesiredState>,
    /// Pods that could not be resolved, with why (for their status).
    pub unresolved: Vec<Unresolvable>,
}

/// A pod bound to a node that its desired state cannot carry as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolvable {
    pub pod: Key,
    pub uid: String,
    pub why: Unresolved,
    /// It stays in the published state in its last form (it runs on): its
    /// status stands, only an Event says why it is not updated.
    pub kept: bool,
}

impl Fleet {
    pub fn new() -> Self {
        Fleet::default()
    }

    /// An object from a watch: added or modified, or `deleted`.
    pub fn changed(&mut self, object: &Object, deleted: bool) {
        match object {
            Object::Node(node) => {
                let name = node.metadata.name.clone();
                if deleted {
                    self.nodes.remove(&name);
                    self.published.remove(&name);
                } else {
                    self.nodes.insert(name.clone(), node.clone());
                }
                self.dirty.insert(name);
            }
            Object::Pod(pod) => self.pod_changed(pod, deleted),
            Object::ConfigMap(cm) => {
                let key = key_of(&cm.metadata.namespace, &cm.metadata.name);
                self.mark_users(&key, false);
                keep(&mut self.objects.config_maps, key, cm, deleted);
            }
            Object::Secret(secret) => {
                let key = key_of(&secret.metadata.namespace, &secret.metadata.name);
                self.mark_users(&key, true);
                keep(&mut self.objects.secrets, key, secret, deleted);
            }
            _ => {}
        }
    }

    fn pod_changed(&mut self, pod: &Pod, deleted: bool) {
        let key = key_of(&pod.metadata.namespace, &pod.metadata.name);
        if let Some(old) = self.pods.remove(&key) {
            self.uids.remove(&old.metadata.uid);
            self.unindex(&key, &old);
        }
        if deleted || pod.spec.node_name.is_empty() {
            return;
        }
        let refs = pod.spec.references();
        let namespace = &pod.metadata.namespace;
        for name in refs.config_maps {
            self.config_map_users
                .entry(key_of(namespace, &name))
                .or_default()
                .insert(key.clone());
        }
        for name in refs.secrets {
            self.secret_users
                .entry(key_of(namespace, &name))
                .or_default()
                .insert(key.clone());
        }
        self.by_node
            .entry(pod.spec.node_name.clone())
            .or_default()
            .insert(key.clone());
        self.dirty.insert(pod.spec.node_name.clone());
        self.uids.insert(pod.metadata.uid.clone(), key.clone());
        self.pods.insert(key, pod.clone());
    }

    fn unindex(&mut self, key: &Key, pod: &Pod) {
        let node = &pod.spec.node_name;
        if let Some(keys) = self.by_node.get_mut(node) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_node.remove(node);
            }
        }
        self.dirty.insert(node.clone());
        let refs = pod.spec.references();
        let namespace = &pod.metadata.namespace;
        for (users, names) in [
            (&mut self.config_map_users, refs.config_maps),
            (&mut self.secret_users, refs.secrets),
        ] {
            for name in names {
                let object = key_of(namespace, &name);
                if let Some(pods) = users.get_mut(&object) {
                    pods.remove(key);
                    if pods.is_empty() {
                        users.remove(&object);
                    }
                }
            }
        }
    }

    /// Marks the nodes of the pods using a ConfigMap (or Secret).
    fn mark_users(&mut self, object: &Key, secret: bool) {
        let users = if secret {
            &self.secret_users
        } else {
            &self.config_map_users
        };
        for pod in users.get(object).into_iter().flatten() {
            if let Some(pod) = self.pods.get(pod) {
                self.dirty.insert(pod.spec.node_name.clone());
            }
        }
    }

    /// The desired states that changed since they were last published,
    /// stamped with `revision` (the store revision the watches are at).
    /// Nodes without a Node object get nothing: a device learns its state
    /// once it is registered.
    pub fn updates(&mut self, revision: u64) -> Vec<Update> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut updates = Vec::new();
        for name in dirty {
            let Some(node) = self.nodes.get(&name) else {
                continue;
            };
            let pods = self
                .by_node
                .get(&name)
                .into_iter()
                .flatten()
                .filter_map(|key| self.pods.get(key));
            let previous = self.published.get(&name);
            let (state, unresolved) = desired::state(node, revision, pods, &self.objects, previous);
            let unresolved: Vec<Unresolvable> = unresolved
                .into_iter()
                .map(|(pod, why)| Unresolvable {
                    pod: key_of(&pod.metadata.namespace, &pod.metadata.name),
                    uid: pod.metadata.uid.clone(),
                    kept: state.pods.iter().any(|p| p.uid == pod.metadata.uid),
                    why,
                })
                .collect();
            let same =
                previous.is_some_and(|p| p.pods == state.pods && p.services == state.services);
            if !same || !unresolved.is_empty() {
                updates.push(Update {
                    node: name,
                    state: (!same).then_some(state),
                    unresolved,
                });
            }
        }
        updates
    }

    /// The broker accepted `state`: later updates compare against it.
    pub fn published(&mut self, state: DesiredState) {
        if self.nodes.contains_key(&state.node) {
            self.published.insert(state.node.clone(), state);
        }
    }

    /// The bound pod with this uid.
    pub fn pod_by_uid(&self, uid: &str) -> Option<&Pod> {
        self.uids.get(uid).and_then(|key| self.pods.get(key))
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// The state last published for `node`.
    pub fn published_state(&self, node: &str) -> Option<&DesiredState> {
        self.published.get(node)
    }

    /// Every state published, to publish again to a broker that may have
    /// lost them (a restart without persistence).
    pub fn all_published(&self) -> impl Iterator<Item = &DesiredState> {
        self.published.values()
    }

    /// Takes over what `other` published (after reloading the store).
    pub fn inherit_published(&mut self, other: Fleet) {
        self.published = other.published;
        self.published
            .retain(|node, _| self.nodes.contains_key(node));
    }

    /// A state could not be published: try again at the next update.
    pub fn retry(&mut self, node: &str) {
        self.dirty.insert(node.to_owned());
    }
}

/// Keeps `object` under `key`, or forgets it when `deleted`.
fn keep<T: Clone>(map: &mut BTreeMap<Key, T>, key: Key, object: &T, deleted: bool) {
    if deleted {
        map.remove(&key);
    } else {
        map.insert(key, object.clone());
    }
}

fn key_of(namespace: &str, name: &str) -> Key {
    (namespace.to_owned(), name.to_owned())
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::Object;
    use serde_json::json;

    use super::*;

    fn object(value: serde_json::Value) -> Object {
        flotilla_shared::manifest::decode_object(
            value,
            flotilla_shared::manifest::FieldValidation::Strict,
        )
        .expect("test object decodes")
        .object
    }

    fn node(name: &str) -> Object {
        object(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}))
    }

    fn pod(name: &str, node: &str, config_map: &str) -> Object {
        object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "default", "name": name, "uid": format!("uid-{name}")},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app",
                "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": config_map, "key": "v"}}}]}]},
        }))
    }

    fn config_map(name: &str, value: &str) -> Object {
        object(json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"namespace": "default", "name": name}, "data": {"v": value}}))
    }

    fn publish_all(fleet: &mut Fleet, revision: u64) -> Vec<(String, Vec<String>)> {
        let updates = fleet.updates(revision);
        updates
            .into_iter()
            .filter_map(|u| {
                let state = u.state?;
                let names = state.pods.iter().map(|p| p.name.clone()).collect();
                fleet.published(state);
                Some((u.node, names))
            })
            .collect()
    }

    #[test]
    fn only_states_that_changed_are_published() {
        let mut fleet = Fleet::new();
        fleet.changed(&config_map("a", "1"), false);
        fleet.changed(&config_map("b", "1"), false);
        fleet.changed(&pod("p1", "gw-1", "a"), false);
        fleet.changed(&pod("p2", "gw-2", "b"), false);
        // No Node objects yet: nothing to publish.
        assert!(publish_all(&mut fleet, 1).is_empty());
        fleet.changed(&node("gw-1"), false);
        fleet.changed(&node("gw-2"), false);
        assert_eq!(
            publish_all(&mut fleet, 2),
            [
                ("gw-1".to_owned(), vec!["p1".to_owned()]),
                ("gw-2".to_owned(), vec!["p2".to_owned()])
            ]
        );
        // A Node status update or an unrelated ConfigMap changes nothing a
        // device runs.
        fleet.changed(&node("gw-1"), false);
        fleet.changed(&config_map("unused", "x"), false);
        assert!(publish_all(&mut fleet, 3).is_empty());
        // ConfigMap a feeds p1 on gw-1 only.
        fleet.changed(&config_map("a", "2"), false);
        let updates = fleet.updates(4);
        assert_eq!(updates.len(), 1);
        let state = updates[0].state.as_ref().expect("a new state");
        assert_eq!(state.node, "gw-1");
        assert_eq!(state.revision, 4);
        assert_eq!(state.pods[0].containers[0].env[0].value, "2");
        // Not published (the broker was down): offered again.
        fleet.retry("gw-1");
        assert_eq!(
            publish_all(&mut fleet, 5),
            [("gw-1".to_owned(), vec!["p1".to_owned()])]
        );
        // A pod moving off gw-2 (deleted) and onto gw-1.
        fleet.changed(&pod("p2", "gw-2", "b"), true);
        fleet.changed(&pod("p3", "gw-1", "b"), false);
        assert_eq!(
            publish_all(&mut fleet, 6),
            [
                ("gw-1".to_owned(), vec!["p1".to_owned(), "p3".to_owned()]),
                ("gw-2".to_owned(), vec![])
            ]
        );
        // b's users are now p3 only.
        fleet.changed(&config_map("b", "9"), false);
        let updates = fleet.updates(7);
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].node, "gw-1");
    }

    #[test]
    fn unresolvable_pods_are_reported_and_running_ones_kept() {
        let mut fleet = Fleet::new();
        fleet.changed(&node("gw-1"), false);
        fleet.changed(&config_map("a", "1"), false);
        fleet.changed(&pod("p1", "gw-1", "a"), false);
        assert_eq!(publish_all(&mut fleet, 1).len(), 1);
        fleet.changed(&config_map("a", "1"), true);
        fleet.changed(&pod("p2", "gw-1", "missing"), false);
        let updates = fleet.updates(2);
        assert_eq!(updates.len(), 1);
        // p1 keeps running with what it had and p2 cannot start: the
        // published state stands, only the reasons are news.
        assert!(updates[0].state.is_none());
        let why: Vec<(&str, &str, bool)> = updates[0]
            .unresolved
            .iter()
            .map(|u| (u.pod.1.as_str(), u.why.message.as_str(), u.kept))
            .collect();
        assert_eq!(
            why,
            [
                ("p1", "configmap \"a\" not found", true),
                ("p2", "configmap \"missing\" not found", false)
            ]
        );
    }
}
