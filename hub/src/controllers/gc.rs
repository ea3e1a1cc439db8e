//! The garbage collector: deletes objects whose owners are all gone, and
//! carries out the foreground and orphan deletions the API starts.
//!
//! Ported from Kubernetes' `pkg/controller/garbagecollector/garbagecollector.go`
//! (`attemptToDeleteItem`, `classifyReferences`,
//! `processDeletingDependentsItem`, `orphanDependents`) with the triggers of
//! `graph_builder.go`. The owner graph is the cache's index of dependents by
//! owner uid; an owner is looked up by kind, namespace and name, and is the
//! owner only if its uid is the one the reference names (a same-named object
//! created since is somebody else). An owner missing from the cache is gone:
//! the cache follows every kind Flotilla serves. A reference to a kind
//! Flotilla does not serve is never taken as dangling.
//!
//! Reconciling an object that is not being deleted and has owners:
//!
//! - some owner is alive (and not deleting its dependents in the
//!   foreground): the references to owners that are gone or deleting in the
//!   foreground are removed (Update), otherwise nothing;
//! - no owner is alive, and one deletes its dependents in the foreground:
//!   the object is deleted in the foreground too if it has dependents of its
//!   own, in the background if not;
//! - every owner is gone: the object is deleted in the background (or as its
//!   own `orphan`/`foregroundDeletion` finalizer asks).
//!
//! Reconciling an object being deleted:
//!
//! - with the `orphan` finalizer: every dependent loses its reference to it
//!   (Update each), then, once the cache shows none left, the finalizer is
//!   removed (the API then deletes the object);
//! - with the `foregroundDeletion` finalizer: its dependents delete
//!   themselves (each is queued and decides as above); once none with
//!   `blockOwnerDeletion: true` remains, the finalizer is removed.
//!
//! Not carried over: the cycle breaking of `attemptToDeleteItem` (an
//! ownership cycle deleted in the foreground waits forever, as a dependent
//! blocking its own owner would) and the `OwnerRefInvalidNamespace` Event.

use flotilla_shared::model::{KINDS, Object, ObjectMeta, OwnerReference};

use super::{Action, Cache, Command, ObjectKey, Propagation, Reconciler, key_of};
use crate::api::deletion::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// The garbage collector's core.
#[derive(Debug, Clone, Copy, Default)]
pub struct GarbageCollector;

/// What an owner reference points at.
#[derive(Debug, Clone, Copy)]
enum Owner<'a> {
    Live(&'a Object),
    Gone,
    /// A kind Flotilla does not serve: never collected for it.
    Unknown,
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().any(|f| f == finalizer)
}

/// Being deleted, with its dependents deleted first.
fn deleting_dependents(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some() && has_finalizer(meta, FOREGROUND_FINALIZER)
}

/// Being deleted, and waiting for the collector to finish with its dependents.
fn waits_for_collector(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
        && (has_finalizer(meta, FOREGROUND_FINALIZER) || has_finalizer(meta, ORPHAN_FINALIZER))
}

/// The object `reference` (held by `dependent`) names, if it still exists.
fn owner_of<'a>(cache: &'a Cache, dependent: &Object, reference: &OwnerReference) -> Owner<'a> {
    let group = reference
        .api_version
        .split_once('/')
        .map_or("", |(group, _)| group);
    let Some(info) = KINDS
        .iter()
        .find(|info| info.kind == reference.kind && info.group == group)
    else {
        return Owner::Unknown;
    };
    let namespace = if info.namespaced {
        dependent.metadata().namespace.as_str()
    } else {
        ""
    };
    match cache.find(info.kind, namespace, &reference.name) {
        Some(owner) if owner.metadata().uid == reference.uid => Owner::Live(owner),
        _ => Owner::Gone,
    }
}

/// `object` with `finalizer` removed.
fn without_finalizer(object: &Object, finalizer: &str) -> Command {
    let mut updated = object.clone();
    updated.metadata_mut().finalizers.retain(|f| f != finalizer);
    Command::Update(Box::new(updated))
}

impl Reconciler for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector-controller"
    }

    fn keys_for(&self, object: &Object, cache: &Cache) -> Vec<ObjectKey> {
        let meta = object.metadata();
        let key = key_of(object);
        let mut keys = Vec::new();
        let present = cache
            .get(&key)
            .is_some_and(|current| current.metadata().uid == meta.uid);
        if present {
            if !meta.owner_references.is_empty() || waits_for_collector(meta) {
                keys.push(key);
            }
            // Entering foreground deletion: each dependent decides.
            if deleting_dependents(meta) {
                keys.extend(cache.dependents_of(&meta.uid).map(key_of));
            }
        } else {
            // Gone: its dependents may have no owner left.
            keys.extend(cache.dependents_of(&meta.uid).map(key_of));
        }
        // An owner waiting on its dependents looks again when one changes.
        for reference in &meta.owner_references {
            if let Owner::Live(owner) = owner_of(cache, object, reference)
                && waits_for_collector(owner.metadata())
            {
                keys.push(key_of(owner));
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    fn reconcile(&self, key: &ObjectKey, cache: &Cache, _now: std::time::SystemTime) -> Action {
        let Some(object) = cache.get(key) else {
            return Action::await_change();
        };
        let meta = object.metadata();
        if meta.deletion_timestamp.is_some() {
            if has_finalizer(meta, ORPHAN_FINALIZER) {
                return orphan_dependents(object, cache);
            }
            if has_finalizer(meta, FOREGROUND_FINALIZER) {
                return finish_foreground(object, cache);
            }
            // On its way out: nothing to decide.
            return Action::await_change();
        }
        if meta.owner_references.is_empty() {
            return Action::await_change();
        }
        collect(object, cache)
    }
}

/// `attemptToDeleteItem` for an object with owners that is not being deleted.
fn collect(object: &Object, cache: &Cache) -> Action {
    let meta = object.metadata();
    let mut solid = false;
    let mut waiting = false;
    let mut drop: Vec<&str> = Vec::new();
    for reference in &meta.owner_references {
        match owner_of(cache, object, reference) {
            Owner::Unknown => solid = true,
            Owner::Gone => drop.push(&reference.uid),
            Owner::Live(owner) if deleting_dependents(owner.metadata()) => {
                waiting = true;
                drop.push(&reference.uid);
            }
            Owner::Live(_) => solid = true,
        }
    }
    if solid {
        if drop.is_empty() {
            return Action::await_change();
        }
        let mut updated = object.clone();
        updated
            .metadata_mut()
            .owner_references
            .retain(|r| !drop.contains(&r.uid.as_str()));
        return Action::with(vec![Command::Update(Box::new(updated))]);
    }
    let propagation = if waiting && cache.dependents_of(&meta.uid).next().is_some() {
        Propagation::Foreground
    } else if has_finalizer(meta, ORPHAN_FINALIZER) {
        Propagation::Orphan
    } else if has_finalizer(meta, FOREGROUND_FINALIZER) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Action::with(vec![Command::Delete {
        key: key_of(object),
        uid: Some(meta.uid.clone()),
        propagation,
    }])
}

/// `orphanDependents`, then the `orphan` finalizer's removal.
fn orphan_dependents(object: &Object, cache: &Cache) -> Action {
    let uid = &object.metadata().uid;
    let commands: Vec<Command> = cache
        .dependents_of(uid)
        .map(|dependent| {
            let mut updated = dependent.clone();
            updated
                .metadata_mut()
                .owner_references
                .retain(|r| r.uid != *uid);
            Command::Update(Box::new(updated))
        })
        .collect();
    if commands.is_empty() {
        Action::with(vec![without_finalizer(object, ORPHAN_FINALIZER)])
    } else {
        Action::with(commands)
    }
}

/// `processDeletingDependentsItem`: the finalizer goes once no dependent
/// blocks it.
fn finish_foreground(object: &Object, cache: &Cache) -> Action {
    let uid = &object.metadata().uid;
    let blocked = cache.dependents_of(uid).any(|dependent| {
        dependent
            .metadata()
            .owner_references
            .iter()
            .any(|r| r.uid == *uid && r.block_owner_deletion == Some(true))
    });
    if blocked {
        Action::await_change()
    } else {
        Action::with(vec![without_finalizer(object, FOREGROUND_FINALIZER)])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::SystemTime;

    use flotilla_shared::model::{ConfigMap, Deployment, Pod, ReplicaSet, Time};

    use super::*;
    use crate::api::deletion::{self, Deletion};

    fn meta(name: &str, uid: &str, owners: &[(&str, &str, &str, bool)]) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            uid: uid.into(),
            resource_version: "3".into(),
            owner_references: owners
                .iter()
                .map(|(kind, name, uid, block)| OwnerReference {
                    api_version: match *kind {
                        "Deployment" | "ReplicaSet" | "StatefulSet" => "apps/v1",
                        _ => "v1",
                    }
                    .into(),
                    kind: (*kind).into(),
                    name: (*name).into(),
                    uid: (*uid).into(),
                    controller: Some(true),
                    block_owner_deletion: block.then_some(true),
                })
                .collect(),
            ..ObjectMeta::default()
        }
    }

    fn deployment(uid: &str) -> Object {
        Object::from(Deployment {
            metadata: meta("web", uid, &[]),
            ..Deployment::default()
        })
    }

    fn replica_set(owners: &[(&str, &str, &str, bool)]) -> Object {
        Object::from(ReplicaSet {
            metadata: meta("web-1", "rs-uid", owners),
            ..ReplicaSet::default()
        })
    }

    fn pod(name: &str, owners: &[(&str, &str, &str, bool)]) -> Object {
        Object::from(Pod {
            metadata: meta(name, &format!("uid-{name}"), owners),
            ..Pod::default()
        })
    }

    const BY_DEPLOYMENT: (&str, &str, &str, bool) = ("Deployment", "web", "d-uid", true);
    const BY_RS: (&str, &str, &str, bool) = ("ReplicaSet", "web-1", "rs-uid", true);

    /// `object` marked for deletion with `finalizer`.
    fn deleting(mut object: Object, finalizer: &str) -> Object {
        let meta = object.metadata_mut();
        meta.deletion_timestamp = Some(Time("2026-11-18T11:06:40Z".into()));
        meta.deletion_grace_period_seconds = Some(0);
        meta.finalizers.push(finalizer.into());
        object
    }

    fn cache_of(objects: impl IntoIterator<Item = Object>) -> Cache {
        let mut cache = Cache::new();
        for object in objects {
            cache.apply(object);
        }
        cache
    }

    fn delete(object: &Object, propagation: Propagation) -> Command {
        Command::Delete {
            key: key_of(object),
            uid: Some(object.metadata().uid.clone()),
            propagation,
        }
    }

    fn update(mut object: Object, change: impl FnOnce(&mut ObjectMeta)) -> Command {
        change(object.metadata_mut());
        Command::Update(Box::new(object))
    }

    fn reconcile(subject: &Object, others: Vec<Object>) -> Action {
        let cache = cache_of(others.into_iter().chain([subject.clone()]));
        GarbageCollector.reconcile(&key_of(subject), &cache, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn dependents_go_when_every_owner_is_gone_and_stay_while_one_lives() {
        let rs = replica_set(&[BY_DEPLOYMENT]);
        let two_owners = pod("p", &[BY_RS, ("ConfigMap", "cfg", "cm-uid", false)]);
        let stateful = pod("p", &[("StatefulSet", "db", "ss-uid", true)]);
        let mut orphaning = pod("p", &[BY_RS]);
        orphaning
            .metadata_mut()
            .finalizers
            .push(ORPHAN_FINALIZER.into());
        let gone = deleting(pod("p", &[BY_RS]), "example.com/hold");
        // (case, subject, the rest of the cluster, what the collector does)
        let cases = [
            (
                "owner alive",
                rs.clone(),
                vec![deployment("d-uid")],
                Action::await_change(),
            ),
            (
                "owner gone: background",
                rs.clone(),
                vec![pod("p", &[BY_RS])],
                Action::with(vec![delete(&rs, Propagation::Background)]),
            ),
            (
                "a same-named owner with another uid is not the owner",
                rs.clone(),
                vec![deployment("other-uid")],
                Action::with(vec![delete(&rs, Propagation::Background)]),
            ),
            (
                "one owner of two gone: its reference goes",
                two_owners.clone(),
                vec![rs.clone()],
                Action::with(vec![update(two_owners.clone(), |m| {
                    m.owner_references.truncate(1)
                })]),
            ),
            (
                "an owner of a kind not served is never taken as gone",
                stateful,
                vec![],
                Action::await_change(),
            ),
            (
                "the object's own orphan finalizer is honoured",
                orphaning.clone(),
                vec![],
                Action::with(vec![delete(&orphaning, Propagation::Orphan)]),
            ),
            (
                "already being deleted",
                gone,
                vec![],
                Action::await_change(),
            ),
        ];
        for (case, subject, others, expected) in cases {
            assert_eq!(reconcile(&subject, others), expected, "{case}");
        }
    }

    #[test]
    fn dependents_of_a_foreground_deletion_delete_themselves_foreground_when_they_own_others() {
        let owner = deleting(deployment("d-uid"), FOREGROUND_FINALIZER);
        let rs = replica_set(&[BY_DEPLOYMENT]);
        let also_owned = pod("p", &[BY_DEPLOYMENT, ("ConfigMap", "cfg", "cm-uid", false)]);
        let config = Object::from(ConfigMap {
            metadata: meta("cfg", "cm-uid", &[]),
            ..ConfigMap::default()
        });
        let cases = [
            (
                "with dependents: foreground",
                rs.clone(),
                vec![owner.clone(), pod("p", &[BY_RS])],
                Action::with(vec![delete(&rs, Propagation::Foreground)]),
            ),
            (
                "without: background",
                rs.clone(),
                vec![owner.clone()],
                Action::with(vec![delete(&rs, Propagation::Background)]),
            ),
            (
                "another owner lives: only the reference goes",
                also_owned.clone(),
                vec![owner, config],
                Action::with(vec![update(also_owned, |m| {
                    m.owner_references.remove(0);
                })]),
            ),
        ];
        for (case, subject, others, expected) in cases {
            assert_eq!(reconcile(&subject, others), expected, "{case}");
        }
    }

    #[test]
    fn a_foreground_owner_keeps_its_finalizer_while_a_blocking_dependent_remains() {
        let owner = deleting(deployment("d-uid"), FOREGROUND_FINALIZER);
        let release = Action::with(vec![without_finalizer(&owner, FOREGROUND_FINALIZER)]);
        let cases = [
            (
                "a blocking dependent",
                vec![replica_set(&[BY_DEPLOYMENT])],
                Action::await_change(),
            ),
            (
                "a blocking dependent on its way out",
                vec![deleting(
                    replica_set(&[BY_DEPLOYMENT]),
                    FOREGROUND_FINALIZER,
                )],
                Action::await_change(),
            ),
            (
                "only a dependent that does not block",
                vec![replica_set(&[("Deployment", "web", "d-uid", false)])],
                release.clone(),
            ),
            ("no dependents", vec![], release),
        ];
        for (case, others, expected) in cases {
            assert_eq!(reconcile(&owner, others), expected, "{case}");
        }
    }

    #[test]
    fn an_orphaning_owner_frees_its_dependents_then_drops_its_finalizer() {
        let owner = deleting(deployment("d-uid"), ORPHAN_FINALIZER);
        let rs = replica_set(&[BY_DEPLOYMENT]);
        assert_eq!(
            reconcile(&owner, vec![rs.clone()]),
            Action::with(vec![update(rs, |m| m.owner_references.clear())])
        );
        assert_eq!(
            reconcile(&owner, vec![replica_set(&[])]),
            Action::with(vec![without_finalizer(&owner, ORPHAN_FINALIZER)])
        );
    }

    #[test]
    fn changes_queue_the_object_its_waiting_owners_and_a_gone_objects_dependents() {
        let rs = replica_set(&[BY_DEPLOYMENT]);
        let p = pod("p", &[BY_RS]);
        let rs_key = key_of(&rs);
        let p_key = key_of(&p);
        let cases = [
            (
                "an owned object",
                vec![rs.clone(), p.clone()],
                p.clone(),
                vec![p_key.clone()],
            ),
            (
                "an object without owners",
                vec![deployment("d-uid")],
                deployment("d-uid"),
                vec![],
            ),
            (
                "a gone owner: its dependents",
                vec![p.clone()],
                rs.clone(),
                vec![p_key.clone()],
            ),
            (
                "a dependent of an owner deleting in the foreground: the owner too",
                vec![deleting(rs.clone(), FOREGROUND_FINALIZER), p.clone()],
                p.clone(),
                vec![p_key.clone(), rs_key.clone()],
            ),
            (
                "an owner entering foreground deletion: its dependents",
                vec![deleting(rs.clone(), FOREGROUND_FINALIZER), p.clone()],
                deleting(rs.clone(), FOREGROUND_FINALIZER),
                vec![p_key, rs_key],
            ),
        ];
        for (case, objects, changed, mut keys) in cases {
            keys.sort();
            assert_eq!(
                GarbageCollector.keys_for(&changed, &cache_of(objects)),
                keys,
                "{case}"
            );
        }
    }

    /// The cluster as the API would change it, for chains of reconciles.
    struct World {
        cache: Cache,
        queue: VecDeque<ObjectKey>,
        /// The keys of the objects removed, in order.
        removed: Vec<String>,
    }

    impl World {
        fn new(objects: Vec<Object>) -> Self {
            let mut world = World {
                cache: cache_of(objects.clone()),
                queue: VecDeque::new(),
                removed: Vec::new(),
            };
            for object in &objects {
                world.changed(object);
            }
            world
        }

        fn changed(&mut self, object: &Object) {
            for key in GarbageCollector.keys_for(object, &self.cache) {
                if !self.queue.contains(&key) {
                    self.queue.push_back(key);
                }
            }
        }

        fn remove(&mut self, key: &ObjectKey) {
            if let Some(gone) = self.cache.remove(key) {
                self.removed.push(key.name.clone());
                self.changed(&gone);
            }
        }

        /// A user's (or the collector's) DELETE, with the API's rules.
        fn delete(&mut self, key: &ObjectKey, propagation: Propagation) {
            let Some(object) = self.cache.get(key).cloned() else {
                return;
            };
            match deletion::decide(&object, propagation, None, SystemTime::UNIX_EPOCH) {
                Deletion::Now => self.remove(key),
                Deletion::Mark(marked) => {
                    self.cache.apply((*marked).clone());
                    self.changed(&marked);
                }
                Deletion::Unchanged => {}
            }
        }

        fn update(&mut self, object: Object) {
            let meta = object.metadata();
            if meta.deletion_timestamp.is_some() && meta.finalizers.is_empty() {
                self.remove(&key_of(&object));
            } else {
                self.cache.apply(object.clone());
                self.changed(&object);
            }
        }

        /// Reconciles until nothing is queued.
        fn settle(&mut self) {
            for _ in 0..1000 {
                let Some(key) = self.queue.pop_front() else {
                    return;
                };
                let action = GarbageCollector.reconcile(&key, &self.cache, SystemTime::UNIX_EPOCH);
                let wrote = !action.commands.is_empty();
                for command in action.commands {
                    match command {
                        Command::Delete {
                            key, propagation, ..
                        } => self.delete(&key, propagation),
                        Command::Update(object) => self.update(*object),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                // The runtime looks again at a key whose commands succeeded.
                if wrote && !self.queue.contains(&key) {
                    self.queue.push_back(key);
                }
            }
            panic!("the garbage collector does not settle");
        }
    }

    fn chain() -> Vec<Object> {
        vec![
            deployment("d-uid"),
            replica_set(&[BY_DEPLOYMENT]),
            pod("p1", &[BY_RS]),
            pod("p2", &[BY_RS]),
            Object::from(ConfigMap {
                metadata: meta("unowned", "cm-uid", &[]),
                ..ConfigMap::default()
            }),
        ]
    }

    #[test]
    fn deleting_a_deployment_deletes_its_replica_sets_and_pods_as_propagation_asks() {
        // (propagation, removed in order, left)
        let cases = [
            (
                Propagation::Background,
                vec!["web", "web-1", "p1", "p2"],
                vec!["unowned"],
            ),
            (
                Propagation::Foreground,
                vec!["p1", "p2", "web-1", "web"],
                vec!["unowned"],
            ),
            (
                Propagation::Orphan,
                vec!["web"],
                vec!["p1", "p2", "unowned", "web-1"],
            ),
        ];
        for (propagation, removed, left) in cases {
            let mut world = World::new(chain());
            world.settle();
            assert!(
                world.removed.is_empty(),
                "{propagation:?}: a healthy chain stays"
            );
            world.delete(&ObjectKey::new("Deployment", "default", "web"), propagation);
            world.settle();
            assert_eq!(world.removed, removed, "{propagation:?}");
            let mut names: Vec<_> = ["Deployment", "ReplicaSet", "Pod", "ConfigMap"]
                .iter()
                .flat_map(|kind| world.cache.of_kind(kind))
                .map(|o| o.metadata().name.clone())
                .collect();
            names.sort();
            assert_eq!(names, left, "{propagation:?}");
            if propagation == Propagation::Orphan {
                let orphan = world.cache.find("ReplicaSet", "default", "web-1").unwrap();
                assert!(orphan.metadata().owner_references.is_empty());
            }
        }
    }
}
