//! The controllers' view of the cluster: every object of the kinds they
//! read, kept current from a watch of the store (by the runtime), with the
//! indexes reconcilers need (pods by node, objects by owner uid).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flotilla_shared::model::{
    DaemonSet, Deployment, Job, Lease, Namespace, Node, Object, Pod, ReplicaSet, Service,
};

use super::{ObjectKey, key_of};

/// All objects of the followed kinds, by key.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    objects: BTreeMap<ObjectKey, Object>,
    /// owner uid → keys of the objects naming it in their ownerReferences.
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
    /// node name → keys of the pods bound to it.
    pods_on_node: HashMap<String, BTreeSet<ObjectKey>>,
    /// The store revision the cache reflects.
    revision: u64,
}

/// A typed view of the objects of one kind.
macro_rules! typed {
    ($fn:ident, $kind:ident, $doc:literal) => {
        #[doc = $doc]
        pub fn $fn(&self) -> impl Iterator<Item = &$kind> {
            self.of_kind(stringify!($kind))
                .filter_map(|object| match object {
                    Object::$kind(typed) => Some(typed),
                    _ => None,
                })
        }
    };
}

impl Cache {
    pub fn new() -> Self {
        Cache::default()
    }

    /// The store revision the cache reflects.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }

    /// Adds or replaces an object.
    pub fn apply(&mut self, object: Object) {
        let key = key_of(&object);
        self.unindex(&key);
        for owner in &object.metadata().owner_references {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(key.clone());
        }
        if let Object::Pod(pod) = &object
            && !pod.spec.node_name.is_empty()
        {
            self.pods_on_node
                .entry(pod.spec.node_name.clone())
                .or_default()
                .insert(key.clone());
        }
        self.objects.insert(key, object);
    }

    /// Removes an object; answers it as it was.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Object> {
        self.unindex(key);
        self.objects.remove(key)
    }

    fn unindex(&mut self, key: &ObjectKey) {
        let Some(old) = self.objects.get(key) else {
            return;
        };
        for owner in &old.metadata().owner_references {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        if let Object::Pod(pod) = old
            && let Some(set) = self.pods_on_node.get_mut(&pod.spec.node_name)
        {
            set.remove(key);
            if set.is_empty() {
                self.pods_on_node.remove(&pod.spec.node_name);
            }
        }
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Object> {
        self.objects.get(key)
    }

    /// The object of `kind` named `namespace`/`name` (namespace empty for cluster-scoped kinds).
    pub fn find(&self, kind: &str, namespace: &str, name: &str) -> Option<&Object> {
        self.objects.get(&ObjectKey::new(kind, namespace, name))
    }

    /// Every object of `kind`, in (namespace, name) order.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Object> + 'a {
        let start = ObjectKey::new(kind, "", "");
        self.objects
            .range(start..)
            .take_while(move |(key, _)| key.kind == kind)
            .map(|(_, object)| object)
    }

    /// Every object of `kind` in `namespace`, in name order.
    pub fn in_namespace<'a>(
        &'a self,
        kind: &'a str,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Object> + 'a {
        let start = ObjectKey::new(kind, namespace, "");
        self.objects
            .range(start..)
            .take_while(move |(key, _)| key.kind == kind && key.namespace == namespace)
            .map(|(_, object)| object)
    }

    /// The objects whose ownerReferences name the owner with `uid`.
    pub fn dependents_of<'a>(&'a self, uid: &str) -> impl Iterator<Item = &'a Object> + 'a {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|key| self.objects.get(key))
    }

    /// The pods bound to `node`.
    pub fn pods_on_node<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods_on_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|key| match self.objects.get(key) {
                Some(Object::Pod(pod)) => Some(pod),
                _ => None,
            })
    }

    /// The object with `uid` among the objects of `kind` in `namespace`.
    pub fn by_uid<'a>(
        &'a self,
        kind: &'a str,
        namespace: &'a str,
        uid: &str,
    ) -> Option<&'a Object> {
        self.in_namespace(kind, namespace)
            .find(|object| object.metadata().uid == uid)
    }

    typed!(pods, Pod, "Every Pod.");
    typed!(nodes, Node, "Every Node.");
    typed!(replica_sets, ReplicaSet, "Every ReplicaSet.");
    typed!(deployments, Deployment, "Every Deployment.");
    typed!(daemon_sets, DaemonSet, "Every DaemonSet.");
    typed!(jobs, Job, "Every Job.");
    typed!(services, Service, "Every Service.");
    typed!(leases, Lease, "Every Lease.");
    typed!(namespaces, Namespace, "Every Namespace.");
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{ConfigMap, ObjectMeta, OwnerReference};

    use super::*;

    fn pod(name: &str, node: &str, owner: Option<&str>) -> Object {
        let mut pod = Pod::default();
        pod.metadata.name = name.into();
        pod.metadata.namespace = "default".into();
        pod.spec.node_name = node.into();
        if let Some(uid) = owner {
            pod.metadata.owner_references.push(OwnerReference {
                uid: uid.into(),
                kind: "ReplicaSet".into(),
                name: "rs".into(),
                ..OwnerReference::default()
            });
        }
        Object::Pod(pod)
    }

    #[test]
    fn indexes_follow_replacements_and_removals() {
        let mut cache = Cache::new();
        cache.apply(pod("a", "n1", Some("rs-1")));
        cache.apply(pod("b", "n1", Some("rs-1")));
        assert_eq!(cache.pods_on_node("n1").count(), 2);
        assert_eq!(cache.dependents_of("rs-1").count(), 2);
        // a moves to n2 and loses its owner.
        cache.apply(pod("a", "n2", None));
        assert_eq!(cache.pods_on_node("n1").count(), 1);
        assert_eq!(cache.pods_on_node("n2").count(), 1);
        assert_eq!(cache.dependents_of("rs-1").count(), 1);
        cache.remove(&ObjectKey::new("Pod", "default", "b"));
        assert_eq!(cache.pods_on_node("n1").count(), 0);
        assert_eq!(cache.dependents_of("rs-1").count(), 0);
        assert_eq!(cache.pods().count(), 1);
    }

    #[test]
    fn kinds_and_namespaces_are_listed_apart() {
        let mut cache = Cache::new();
        cache.apply(pod("a", "", None));
        let other = Pod {
            metadata: ObjectMeta {
                name: "z".into(),
                namespace: "other".into(),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        cache.apply(Object::Pod(other));
        let mut cm = ConfigMap::default();
        cm.metadata.name = "a".into();
        cm.metadata.namespace = "default".into();
        cache.apply(Object::ConfigMap(cm));
        assert_eq!(cache.of_kind("Pod").count(), 2);
        assert_eq!(cache.in_namespace("Pod", "default").count(), 1);
        assert_eq!(cache.of_kind("ConfigMap").count(), 1);
        assert!(cache.find("Pod", "other", "z").is_some());
    }
}
