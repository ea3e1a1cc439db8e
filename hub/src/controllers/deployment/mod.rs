//! The Deployment controller: rolls a Deployment's pod template out through
//! ReplicaSets, ported from Kubernetes' `pkg/controller/deployment/`
//! (`deployment_controller.go`, `sync.go`, `rolling.go`, `recreate.go`,
//! `progress.go` and `util/deployment_util.go`).
//!
//! One reconcile of a Deployment, as `syncDeployment` does it:
//!
//! 1. claims ReplicaSets: its own that still match the selector, orphans
//!    that match (adopted); owned ones that no longer match are released;
//! 2. being deleted: only the status is written;
//! 3. paused (a `DeploymentPaused` Progressing condition), or a scaling
//!    event (the active ReplicaSets' `desired-replicas` annotation differs
//!    from `spec.replicas`): the ReplicaSets are scaled proportionally, with
//!    no rollout progress ([`sync`]);
//! 4. otherwise a rollout step, `RollingUpdate` ([`rolling`]: the new
//!    ReplicaSet up within `maxSurge`, the old ones down within
//!    `maxUnavailable`, counting available pods) or `Recreate`
//!    ([`recreate`]: the old ones to zero, then, once their pods are gone,
//!    the new one up);
//! 5. the status and conditions (`Progressing`, `Available`) that `kubectl
//!    rollout status` reads ([`progress`]), written only when changed, with a
//!    requeue for the progress deadline.
//!
//! The new ReplicaSet is the one whose template equals the Deployment's but
//! for the `pod-template-hash` label; a new one is named
//! `<deployment>-<hash>` ([`util::compute_hash`] says how the hash is made)
//! and carries the `deployment.kubernetes.io/revision` annotation (one more
//! than the old ones' highest), `desired-replicas` and `max-replicas`.
//!
//! Rollback: modern `kubectl rollout undo` copies an old ReplicaSet's
//! template into the Deployment, so it is an ordinary rollout that finds the
//! old ReplicaSet as the new one and raises its revision (keeping the old
//! number in `deployment.kubernetes.io/revision-history`). The removed
//! `spec.rollbackTo` (and its `deprecated.deployment.rollback.to`
//! annotation) is not supported.
//!
//! Kubernetes makes several API calls in one sync, each seeing the last; a
//! core emits at most one write per object, so the changes are made to
//! working copies and written at the end: the ReplicaSets released, the new
//! ReplicaSet created, each changed ReplicaSet updated once, old ones
//! deleted, the Events, then the Deployment's status (with its revision
//! annotation, which Kubernetes' status strategy lets through).

mod progress;
mod recreate;
mod rolling;
mod sync;
pub mod util;

#[cfg(test)]
pub(crate) mod harness;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use flotilla_shared::model::{Deployment, Object, ObjectReference, ReplicaSet};
use flotilla_shared::selector::Selector;

use super::replicaset::{controller_of, controller_ref, replicas_of};
use super::{Action, Cache, Command, EventType, ObjectKey, Reconciler};

/// The Deployment controller's core.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeploymentController;

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment-controller"
    }

    fn keys_for(&self, object: &Object, cache: &Cache) -> Vec<ObjectKey> {
        match object {
            Object::Deployment(d) => vec![deployment_key(&d.metadata.namespace, &d.metadata.name)],
            Object::ReplicaSet(rs) => match controller_of(&rs.metadata) {
                Some(owner) if owner.kind == "Deployment" => {
                    vec![deployment_key(&rs.metadata.namespace, &owner.name)]
                }
                Some(_) => Vec::new(),
                None => cache
                    .in_namespace("Deployment", &rs.metadata.namespace)
                    .filter_map(|object| match object {
                        Object::Deployment(d)
                            if selector_of(d).is_some_and(|s| {
                                !s.is_everything() && s.matches(&rs.metadata.labels)
                            }) =>
                        {
                            Some(deployment_key(&d.metadata.namespace, &d.metadata.name))
                        }
                        _ => None,
                    })
                    .collect(),
            },
            // A Recreate rollout waits for the old pods to be gone.
            Object::Pod(pod) => {
                let namespace = &pod.metadata.namespace;
                let Some(rs_owner) =
                    controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet")
                else {
                    return Vec::new();
                };
                let Some(Object::ReplicaSet(rs)) =
                    cache.find("ReplicaSet", namespace, &rs_owner.name)
                else {
                    return Vec::new();
                };
                let Some(d_owner) = controller_of(&rs.metadata).filter(|o| o.kind == "Deployment")
                else {
                    return Vec::new();
                };
                match cache.find("Deployment", namespace, &d_owner.name) {
                    Some(Object::Deployment(d)) if !util::is_rolling_update(d) => {
                        vec![deployment_key(namespace, &d.metadata.name)]
                    }
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&self, key: &ObjectKey, cache: &Cache, now: SystemTime) -> Action {
        let Some(Object::Deployment(d)) = cache.get(key) else {
            return Action::await_change();
        };
        let mut r = Rollout::new(d, cache, now);
        let Some(selector) = selector_of(d) else {
            return Action::await_change();
        };
        if selector.is_everything() {
            r.event(
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            if r.d.status.observed_generation < r.d.metadata.generation {
                r.d.status.observed_generation = r.d.metadata.generation;
            }
            return r.finish();
        }
        r.claim_replica_sets(&selector);
        if d.metadata.deletion_timestamp.is_some() {
            r.sync_status_only();
            return r.finish();
        }
        r.check_paused_conditions();
        if d.spec.paused || r.is_scaling_event() {
            r.sync();
        } else if util::is_rolling_update(d) {
            r.rollout_rolling();
        } else {
            r.rollout_recreate();
        }
        r.finish()
    }
}

fn deployment_key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new("Deployment", namespace, name)
}

fn selector_of(d: &Deployment) -> Option<Selector> {
    Selector::from_label_selector(d.spec.selector.as_ref()?).ok()
}

/// One ReplicaSet as the reconcile found it and as it is being changed.
#[derive(Debug)]
struct Entry<'a> {
    /// `None` for the new ReplicaSet this reconcile creates.
    original: Option<&'a ReplicaSet>,
    rs: ReplicaSet,
    /// Adopted by this reconcile (an ownerReference added).
    adopted: bool,
}

/// The working state of one reconcile: copies of the Deployment and its
/// ReplicaSets that the steps change, and what to do at the end.
#[derive(Debug)]
struct Rollout<'a> {
    cache: &'a Cache,
    now: SystemTime,
    original: &'a Deployment,
    /// The Deployment with its new status and annotations.
    d: Deployment,
    /// The claimed ReplicaSets, oldest first.
    entries: Vec<Entry<'a>>,
    /// The index in `entries` of the new ReplicaSet, once known.
    new_rs: Option<usize>,
    /// Updates releasing ReplicaSets that no longer match.
    released: Vec<Command>,
    /// ReplicaSets changed, in the order first changed.
    touched: Vec<usize>,
    deletes: Vec<Command>,
    events: Vec<Command>,
    requeue_after: Option<Duration>,
}

impl<'a> Rollout<'a> {
    fn new(d: &'a Deployment, cache: &'a Cache, now: SystemTime) -> Self {
        Rollout {
            cache,
            now,
            original: d,
            d: d.clone(),
            entries: Vec::new(),
            new_rs: None,
            released: Vec::new(),
            touched: Vec::new(),
            deletes: Vec::new(),
            events: Vec::new(),
            requeue_after: None,
        }
    }

    fn desired(&self) -> i32 {
        replicas_of(self.d.spec.replicas)
    }

    fn rs(&self, i: usize) -> &ReplicaSet {
        &self.entries[i].rs
    }

    fn replicas(&self, i: usize) -> i32 {
        replicas_of(self.entries[i].rs.spec.replicas)
    }

    /// The working copy of ReplicaSet `i`, recorded as changed.
    fn rs_mut(&mut self, i: usize) -> &mut ReplicaSet {
        if self.entries[i].original.is_some() && !self.touched.contains(&i) {
            self.touched.push(i);
        }
        &mut self.entries[i].rs
    }

    /// Every claimed ReplicaSet but the new one, oldest first.
    fn old(&self) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| Some(i) != self.new_rs)
            .collect()
    }

    /// `FilterActiveReplicaSets`: those with replicas wanted.
    fn active(&self, indices: &[usize]) -> Vec<usize> {
        indices
            .iter()
            .copied()
            .filter(|&i| self.replicas(i) > 0)
            .collect()
    }

    fn sum(&self, indices: &[usize], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
        indices.iter().map(|&i| f(self.rs(i))).sum()
    }

    fn reference(&self) -> ObjectReference {
        let meta = &self.original.metadata;
        ObjectReference {
            kind: "Deployment".to_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            api_version: "apps/v1".to_owned(),
            resource_version: meta.resource_version.clone(),
            field_path: String::new(),
        }
    }

    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.events.push(Command::Event {
            regarding: self.reference(),
            type_,
            reason: reason.to_owned(),
            message,
        });
    }

    /// `getReplicaSetsForDeployment`: `ClaimReplicaSets` over the namespace's
    /// ReplicaSets. A Deployment being deleted neither adopts nor releases.
    fn claim_replica_sets(&mut self, selector: &Selector) {
        let d = self.original;
        let deleting = d.metadata.deletion_timestamp.is_some();
        for object in self.cache.in_namespace("ReplicaSet", &d.metadata.namespace) {
            let Object::ReplicaSet(rs) = object else {
                continue;
            };
            let matches = selector.matches(&rs.metadata.labels);
            match controller_of(&rs.metadata) {
                Some(owner) if owner.uid == d.metadata.uid => {
                    if matches {
                        self.entries.push(Entry {
                            original: Some(rs),
                            rs: rs.clone(),
                            adopted: false,
                        });
                    } else if !deleting {
                        let mut released = rs.clone();
                        released
                            .metadata
                            .owner_references
                            .retain(|o| o.uid != d.metadata.uid);
                        self.released
                            .push(Command::Update(Box::new(Object::ReplicaSet(released))));
                    }
                }
                Some(_) => {}
                None => {
                    if deleting || !matches || rs.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let mut copy = rs.clone();
                    copy.metadata.owner_references.push(controller_ref(
                        "apps/v1",
                        "Deployment",
                        &d.metadata,
                    ));
                    self.entries.push(Entry {
                        original: Some(rs),
                        rs: copy,
                        adopted: true,
                    });
                }
            }
        }
        self.entries.sort_by(|a, b| util::by_creation(&a.rs, &b.rs));
        self.touched = (0..self.entries.len())
            .filter(|&i| self.entries[i].adopted)
            .collect();
    }

    /// The commands: releases, the new ReplicaSet, each changed ReplicaSet
    /// once, deletions, Events, and the Deployment's status when it changed.
    fn finish(self) -> Action {
        let mut commands = self.released;
        if let Some(entry) = self.entries.iter().find(|e| e.original.is_none()) {
            commands.push(Command::Create(Box::new(Object::ReplicaSet(
                entry.rs.clone(),
            ))));
        }
        for &i in &self.touched {
            let entry = &self.entries[i];
            if entry.original != Some(&entry.rs) {
                commands.push(Command::Update(Box::new(Object::ReplicaSet(
                    entry.rs.clone(),
                ))));
            }
        }
        commands.extend(self.deletes);
        commands.extend(self.events);
        if self.d.status != self.original.status
            || self.d.metadata.annotations != self.original.metadata.annotations
        {
            commands.push(Command::UpdateStatus(Box::new(Object::Deployment(self.d))));
        }
        let mut action = Action::with(commands);
        if let Some(after) = self.requeue_after {
            action = action.requeue(after);
        }
        action
    }
}
