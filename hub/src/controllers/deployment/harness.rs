//! A simulated cluster for the workload controllers' tests: it carries out
//! the commands the cores emit on a [`Cache`] as the API would (names for
//! `generateName`, uids, resourceVersions with compare-and-swap, generations,
//! status subresources, graceful pod deletion), plays the scheduler and the
//! kubelet on demand, and runs the ReplicaSet and Deployment cores until
//! nothing changes.

use std::time::{Duration, SystemTime};

use flotilla_shared::model::{
    Deployment, Object, PodCondition, ReplicaSet, condition_status, pod_condition, pod_phase,
};

use crate::api::strategy::apply_defaults;
use crate::api::time::format_time;
use crate::controllers::replicaset::{ReplicaSetController, is_pod_active, is_pod_available};
use crate::controllers::{Cache, Command, ObjectKey, Reconciler, key_of};

use super::DeploymentController;

/// The cluster: the cache is the store.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub cache: Cache,
    pub now: SystemTime,
    /// (object name, reason, message) of every Event, in order.
    pub events: Vec<(String, String, String)>,
    /// Writes refused because the object had changed (stale resourceVersion).
    pub conflicts: usize,
    /// The requeue the last Deployment reconcile asked for.
    pub last_requeue: Option<Duration>,
    serial: u64,
}

impl Cluster {
    pub fn new() -> Self {
        Cluster {
            cache: Cache::new(),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            events: Vec::new(),
            conflicts: 0,
            last_requeue: None,
            serial: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    pub fn advance(&mut self, seconds: u64) {
        self.now += Duration::from_secs(seconds);
    }

    /// A create as the API does it.
    pub fn create(&mut self, mut object: Object) -> bool {
        apply_defaults(&mut object);
        let serial = self.next();
        let now = format_time(self.now);
        let meta = object.metadata_mut();
        if meta.name.is_empty() {
            meta.name = format!("{}{}", meta.generate_name, suffix(serial));
        }
        meta.uid = format!("uid-{}", meta.name);
        meta.resource_version = serial.to_string();
        meta.creation_timestamp = Some(now);
        if matches!(object, Object::Deployment(_) | Object::ReplicaSet(_)) {
            object.metadata_mut().generation = 1;
        }
        if self.cache.get(&key_of(&object)).is_some() {
            self.conflicts += 1;
            return false;
        }
        self.cache.apply(object);
        true
    }

    /// The stored object at `object`'s key, if `object` is at its resourceVersion.
    fn current(&mut self, object: &Object) -> Option<Object> {
        match self.cache.get(&key_of(object)) {
            Some(stored)
                if stored.metadata().resource_version == object.metadata().resource_version =>
            {
                Some(stored.clone())
            }
            _ => {
                self.conflicts += 1;
                None
            }
        }
    }

    /// A user's or a controller's update of the main resource.
    pub fn update(&mut self, mut object: Object) -> bool {
        let Some(old) = self.current(&object) else {
            return false;
        };
        apply_defaults(&mut object);
        let serial = self.next();
        let bump = match (&old, &mut object) {
            (Object::Deployment(old), Object::Deployment(new)) => {
                new.status = old.status.clone();
                new.spec != old.spec || new.metadata.annotations != old.metadata.annotations
            }
            (Object::ReplicaSet(old), Object::ReplicaSet(new)) => {
                new.status = old.status.clone();
                new.spec != old.spec
            }
            (Object::Pod(old), Object::Pod(new)) => {
                new.status = old.status.clone();
                false
            }
            _ => false,
        };
        let meta = object.metadata_mut();
        meta.generation = old.metadata().generation + i64::from(bump);
        meta.resource_version = serial.to_string();
        self.cache.apply(object);
        true
    }

    fn update_status(&mut self, mut object: Object) -> bool {
        let Some(old) = self.current(&object) else {
            return false;
        };
        let serial = self.next();
        match (&old, &mut object) {
            (Object::Deployment(old), Object::Deployment(new)) => {
                new.spec = old.spec.clone();
                new.metadata.labels = old.metadata.labels.clone();
                new.metadata.generation = old.metadata.generation;
            }
            (Object::ReplicaSet(old), Object::ReplicaSet(new)) => {
                let status = std::mem::take(&mut new.status);
                *new = old.clone();
                new.status = status;
            }
            _ => panic!("no status subresource for {}", key_of(&object)),
        }
        object.metadata_mut().resource_version = serial.to_string();
        self.cache.apply(object);
        true
    }

    fn delete(&mut self, key: &ObjectKey, uid: Option<&str>) {
        let Some(stored) = self.cache.get(key) else {
            return;
        };
        if uid.is_some_and(|uid| uid != stored.metadata().uid) {
            self.conflicts += 1;
            return;
        }
        match stored.clone() {
            // Pods terminate gracefully: the kubelet removes them.
            Object::Pod(mut pod) => {
                if pod.metadata.deletion_timestamp.is_none() {
                    pod.metadata.deletion_timestamp = Some(format_time(self.now));
                    pod.metadata.resource_version = self.next().to_string();
                    self.cache.apply(Object::Pod(pod));
                }
            }
            _ => {
                self.cache.remove(key);
            }
        }
    }

    /// Carries out `commands` in order.
    pub fn apply(&mut self, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::Create(object) => {
                    self.create(*object);
                }
                Command::Update(object) => {
                    self.update(*object);
                }
                Command::UpdateStatus(object) => {
                    self.update_status(*object);
                }
                Command::Delete { key, uid, .. } => self.delete(&key, uid.as_deref()),
                Command::Event {
                    regarding,
                    reason,
                    message,
                    ..
                } => self.events.push((regarding.name, reason, message)),
                other => panic!("unexpected command {other:?}"),
            }
        }
    }

    /// Runs both controllers over every Deployment and ReplicaSet until a
    /// round changes nothing; panics if that never happens.
    pub fn settle(&mut self) {
        for _ in 0..100 {
            let mut changed = false;
            let deployments: Vec<ObjectKey> =
                self.cache.of_kind("Deployment").map(key_of).collect();
            for key in deployments {
                let action = DeploymentController.reconcile(&key, &self.cache, self.now);
                self.last_requeue = action.requeue_after;
                changed |= writes(&action.commands);
                self.apply(action.commands);
            }
            let sets: Vec<ObjectKey> = self.cache.of_kind("ReplicaSet").map(key_of).collect();
            for key in sets {
                let action = ReplicaSetController.reconcile(&key, &self.cache, self.now);
                changed |= writes(&action.commands);
                self.apply(action.commands);
            }
            if !changed {
                return;
            }
        }
        panic!("the controllers never settle");
    }

    /// The scheduler and the kubelet: terminating pods go away, the others
    /// are bound, running and ready.
    pub fn kubelet(&mut self) {
        let pods: Vec<_> = self.cache.pods().cloned().collect();
        for mut pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                self.cache.remove(&key_of(&Object::Pod(pod)));
                continue;
            }
            if pod.is_ready() {
                continue;
            }
            pod.spec.node_name = "node-1".into();
            pod.status.phase = pod_phase::RUNNING.into();
            pod.status.conditions = vec![PodCondition {
                type_: pod_condition::READY.into(),
                status: condition_status::TRUE.into(),
                last_transition_time: Some(format_time(self.now)),
                ..PodCondition::default()
            }];
            pod.metadata.resource_version = self.next().to_string();
            self.cache.apply(Object::Pod(pod));
        }
    }

    pub fn deployment(&self, name: &str) -> &Deployment {
        match self.cache.find("Deployment", "default", name) {
            Some(Object::Deployment(d)) => d,
            _ => panic!("no deployment {name}"),
        }
    }

    /// The ReplicaSets, oldest first, with their replicas.
    pub fn replica_sets(&self) -> Vec<&ReplicaSet> {
        let mut sets: Vec<&ReplicaSet> = self.cache.replica_sets().collect();
        sets.sort_by(|a, b| super::util::by_creation(a, b));
        sets
    }

    /// Active pods and available pods (minReadySeconds 0).
    pub fn pod_counts(&self) -> (usize, usize) {
        let active: Vec<_> = self.cache.pods().filter(|p| is_pod_active(p)).collect();
        let available = active
            .iter()
            .filter(|p| is_pod_available(p, 0, self.now))
            .count();
        (active.len(), available)
    }

    /// Changes a Deployment as a user's update would, ten seconds later.
    pub fn edit(&mut self, name: &str, change: impl FnOnce(&mut Deployment)) {
        self.advance(10);
        let mut d = self.deployment(name).clone();
        change(&mut d);
        assert!(self.update(Object::Deployment(d)));
    }
}

fn writes(commands: &[Command]) -> bool {
    commands.iter().any(|c| !matches!(c, Command::Event { .. }))
}

/// A five-character name suffix, as the API generates them.
fn suffix(serial: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = serial;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
            n /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
}

/// What `kubectl rollout status` concludes (`DeploymentStatusViewer.Status`
/// in kubectl's `rollout_status.go`): `Ok(message)` when done, `Err(message)`
/// on a deadline, otherwise the waiting message.
pub(crate) fn rollout_status(d: &Deployment) -> Result<String, String> {
    let desired = d.spec.replicas.unwrap_or(1);
    let s = &d.status;
    let name = &d.metadata.name;
    if d.metadata.generation > s.observed_generation {
        return Ok("Waiting for deployment spec update to be observed...".into());
    }
    if s.conditions
        .iter()
        .any(|c| c.type_ == "Progressing" && c.reason == "ProgressDeadlineExceeded")
    {
        return Err(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    Ok(if s.updated_replicas < desired {
        format!(
            "Waiting for deployment {name:?} rollout to finish: {} out of {desired} new replicas have been updated...",
            s.updated_replicas
        )
    } else if s.replicas > s.updated_replicas {
        format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            s.replicas - s.updated_replicas
        )
    } else if s.available_replicas < s.updated_replicas {
        format!(
            "Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are available...",
            s.available_replicas, s.updated_replicas
        )
    } else {
        format!("deployment {name:?} successfully rolled out")
    })
}
