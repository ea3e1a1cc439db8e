//! The namespace controller: empties a namespace being deleted, then lets
//! it go.
//!
//! Ported from Kubernetes' `pkg/controller/namespace/namespace_controller.go`
//! and `pkg/controller/namespace/deletion/namespaced_resources_deleter.go`.
//! A Namespace with a `deletionTimestamp` (the API marks it and sets phase
//! `Terminating`) whose `spec.finalizers` still hold `kubernetes`:
//!
//! - its phase is made `Terminating` if it is not (`updateNamespaceStatusFunc`);
//! - every object of every namespaced kind in it that is not being deleted
//!   already is deleted (background propagation, as `deleteCollection`
//!   does);
//! - once the cache shows none left, `kubernetes` is removed from
//!   `spec.finalizers` (the `finalize` subresource) and the API deletes the
//!   namespace.
//!
//! Objects that wait for their own finalizers or, for pods, for their device
//! to stop them keep the namespace `Terminating` until they go, as in
//! Kubernetes. The `NamespaceContentRemaining` status conditions are not
//! written: Flotilla's `NamespaceStatus` holds the phase only.

use flotilla_shared::model::{KINDS, Namespace, Object};

use super::{Action, Cache, Command, ObjectKey, Propagation, Reconciler, key_of};

/// The finalizer of `spec.finalizers` this controller owns.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

const TERMINATING: &str = "Terminating";

/// The namespace controller's core.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamespaceController;

fn terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
}

impl Reconciler for NamespaceController {
    fn name(&self) -> &'static str {
        "namespace-controller"
    }

    fn keys_for(&self, object: &Object, cache: &Cache) -> Vec<ObjectKey> {
        match object {
            Object::Namespace(ns) if terminating(ns) => vec![key_of(object)],
            _ if object.namespaced() => {
                match cache.find("Namespace", "", &object.metadata().namespace) {
                    Some(found @ Object::Namespace(ns)) if terminating(ns) => vec![key_of(found)],
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&self, key: &ObjectKey, cache: &Cache, _now: std::time::SystemTime) -> Action {
        let Some(Object::Namespace(ns)) = cache.get(key) else {
            return Action::await_change();
        };
        if !terminating(ns) || !ns.spec.finalizers.iter().any(|f| f == NAMESPACE_FINALIZER) {
            return Action::await_change();
        }
        let mut commands = Vec::new();
        let phase_right = ns.status.phase == TERMINATING;
        if !phase_right {
            let mut updated = ns.clone();
            updated.status.phase = TERMINATING.to_owned();
            commands.push(Command::UpdateStatus(Box::new(Object::Namespace(updated))));
        }
        let mut remaining = 0usize;
        for info in KINDS.iter().filter(|info| info.namespaced) {
            for object in cache.in_namespace(info.kind, &ns.metadata.name) {
                remaining += 1;
                let meta = object.metadata();
                if meta.deletion_timestamp.is_none() {
                    commands.push(Command::Delete {
                        key: key_of(object),
                        uid: Some(meta.uid.clone()),
                        propagation: Propagation::Background,
                    });
                }
            }
        }
        // Finalized only from a namespace at the resourceVersion read here:
        // not in the same breath as a status update.
        if remaining == 0 && phase_right {
            let mut finalized = ns.clone();
            finalized
                .spec
                .finalizers
                .retain(|f| f != NAMESPACE_FINALIZER);
            commands.push(Command::Finalize(Box::new(Object::Namespace(finalized))));
        }
        Action::with(commands)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use flotilla_shared::model::{ConfigMap, Node, ObjectMeta, Pod, Time};

    use super::*;

    fn namespace(name: &str, deleting: bool, phase: &str) -> Namespace {
        let mut ns = Namespace {
            metadata: ObjectMeta {
                name: name.into(),
                uid: format!("uid-{name}"),
                resource_version: "4".into(),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        ns.spec.finalizers = vec![NAMESPACE_FINALIZER.into()];
        ns.status.phase = phase.into();
        if deleting {
            ns.metadata.deletion_timestamp = Some(Time("2026-11-18T11:06:40Z".into()));
            ns.metadata.deletion_grace_period_seconds = Some(0);
        }
        ns
    }

    fn in_ns(object: impl Into<Object>, ns: &str, name: &str, deleting: bool) -> Object {
        let mut object = object.into();
        let meta = object.metadata_mut();
        meta.namespace = ns.into();
        meta.name = name.into();
        meta.uid = format!("uid-{name}");
        if deleting {
            meta.deletion_timestamp = Some(Time("2026-11-18T11:06:40Z".into()));
        }
        object
    }

    fn cache_of(objects: impl IntoIterator<Item = Object>) -> Cache {
        let mut cache = Cache::new();
        for object in objects {
            cache.apply(object);
        }
        cache
    }

    fn delete(kind: &str, name: &str) -> Command {
        Command::Delete {
            key: ObjectKey::new(kind, "edge", name),
            uid: Some(format!("uid-{name}")),
            propagation: Propagation::Background,
        }
    }

    fn reconcile(ns: &Namespace, others: Vec<Object>) -> Action {
        let cache = cache_of(others.into_iter().chain([Object::Namespace(ns.clone())]));
        NamespaceController.reconcile(
            &ObjectKey::new("Namespace", "", &ns.metadata.name),
            &cache,
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_terminating_namespace_is_emptied_then_finalized() {
        let ns = namespace("edge", true, TERMINATING);
        let mut finalized = ns.clone();
        finalized.spec.finalizers.clear();
        let content = || {
            vec![
                in_ns(Pod::default(), "edge", "p1", false),
                in_ns(Pod::default(), "edge", "p2", true),
                in_ns(ConfigMap::default(), "edge", "cfg", false),
                // Elsewhere: untouched.
                in_ns(Pod::default(), "default", "p3", false),
            ]
        };
        let mut not_marked = ns.clone();
        not_marked.status.phase = "Active".into();
        let mut marked = not_marked.clone();
        marked.status.phase = TERMINATING.into();
        let mut done = ns.clone();
        done.spec.finalizers.clear();
        let cases = [
            (
                "content left: deleted, except what is going already",
                ns.clone(),
                content(),
                vec![delete("Pod", "p1"), delete("ConfigMap", "cfg")],
            ),
            (
                "only content on its way out: wait",
                ns.clone(),
                vec![in_ns(Pod::default(), "edge", "p2", true)],
                vec![],
            ),
            (
                "empty: finalized",
                ns.clone(),
                vec![in_ns(Pod::default(), "default", "p3", false)],
                vec![Command::Finalize(Box::new(Object::Namespace(finalized)))],
            ),
            (
                "phase not yet Terminating: set first, finalized later",
                not_marked,
                vec![],
                vec![Command::UpdateStatus(Box::new(Object::Namespace(marked)))],
            ),
            (
                "active",
                namespace("edge", false, "Active"),
                content(),
                vec![],
            ),
            ("already finalized", done, content(), vec![]),
        ];
        for (case, ns, others, commands) in cases {
            assert_eq!(reconcile(&ns, others), Action::with(commands), "{case}");
        }
    }

    #[test]
    fn changes_inside_a_terminating_namespace_queue_it() {
        let cache = cache_of([
            Object::Namespace(namespace("edge", true, TERMINATING)),
            Object::Namespace(namespace("default", false, "Active")),
        ]);
        let edge = ObjectKey::new("Namespace", "", "edge");
        let cases = [
            (
                in_ns(Pod::default(), "edge", "p", false),
                vec![edge.clone()],
            ),
            (in_ns(Pod::default(), "default", "p", false), vec![]),
            (
                Object::Namespace(namespace("edge", true, TERMINATING)),
                vec![edge],
            ),
            (
                Object::Namespace(namespace("default", false, "Active")),
                vec![],
            ),
            (Object::from(Node::default()), vec![]),
        ];
        for (object, keys) in cases {
            assert_eq!(
                NamespaceController.keys_for(&object, &cache),
                keys,
                "{object:?}"
            );
        }
    }
}
