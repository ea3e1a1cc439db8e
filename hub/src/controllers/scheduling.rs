//! The scheduler's runtime inside the leader's manager: which pods are
//! pending, which bindings are in flight, and when to try unplaceable pods
//! again (when a node or a pod changes). Placement itself is the pure core
//! in [`crate::scheduler`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::SystemTime;

use flotilla_shared::model::{Object, Pod, PodCondition};

use super::{Cache, Command, EventType, ObjectKey, key_of, reference_to};
use crate::api::time::format_time;
use crate::scheduler::{Config, Decision, Scheduler, is_pending};

/// The most pods placed in one batch.
const BATCH: usize = 2048;

/// Pending pods and the core that places them.
#[derive(Debug)]
pub struct Scheduling {
    /// Which pods are this scheduler's.
    scheduler_name: String,
    core: Scheduler,
    /// Pods to place at the next turn.
    pending: BTreeSet<ObjectKey>,
    /// Pods nothing fitted, with the message they were told; tried again when the cluster changes.
    unschedulable: BTreeMap<ObjectKey, String>,
    /// Bindings sent and not yet seen in the cache.
    binding: HashSet<ObjectKey>,
}

impl Default for Scheduling {
    fn default() -> Self {
        Scheduling::new(Config::default())
    }
}

impl Scheduling {
    pub fn new(config: Config) -> Self {
        Scheduling {
            scheduler_name: config.scheduler_name.clone(),
            core: Scheduler::new(config),
            pending: BTreeSet::new(),
            unschedulable: BTreeMap::new(),
            binding: HashSet::new(),
        }
    }

    /// Follows a change the cache already shows (`object` as it is now, or
    /// as it was last for a deletion).
    pub fn changed(&mut self, object: &Object, deleted: bool) {
        match object {
            Object::Node(node) => {
                if deleted {
                    self.core.node_removed(&node.metadata.name);
                } else {
                    self.core.node_changed(node);
                }
                self.retry_unschedulable();
            }
            Object::Pod(pod) => {
                let key = key_of(object);
                if deleted {
                    self.core
                        .pod_removed(&pod.metadata.namespace, &pod.metadata.name);
                    self.forget(&key);
                    // Freed resources may fit a pod that did not fit before.
                    self.retry_unschedulable();
                    return;
                }
                self.core.pod_changed(pod);
                if is_pending(pod, &self.scheduler_name) {
                    if !self.binding.contains(&key) && !self.unschedulable.contains_key(&key) {
                        self.pending.insert(key);
                    }
                } else {
                    let was_bound_here = self.binding.contains(&key);
                    self.forget(&key);
                    if pod.is_terminal()
                        || pod.metadata.deletion_timestamp.is_some()
                        || !was_bound_here
                    {
                        self.retry_unschedulable();
                    }
                }
            }
            _ => {}
        }
    }

    fn forget(&mut self, key: &ObjectKey) {
        self.pending.remove(key);
        self.unschedulable.remove(key);
        self.binding.remove(key);
    }

    fn retry_unschedulable(&mut self) {
        self.pending.extend(self.unschedulable.keys().cloned());
    }

    /// Places the pending pods: answers the binding commands (each pod's
    /// key with its command) and the commands telling the others why not.
    pub fn schedule(&mut self, cache: &Cache) -> (Vec<(ObjectKey, Command)>, Vec<Command>) {
        if self.pending.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let keys: Vec<ObjectKey> = self.pending.iter().take(BATCH).cloned().collect();
        let pods: Vec<&Pod> = keys
            .iter()
            .filter_map(|key| match cache.get(key) {
                Some(Object::Pod(pod)) if is_pending(pod, &self.scheduler_name) => Some(pod),
                _ => None,
            })
            .collect();
        for key in &keys {
            self.pending.remove(key);
        }
        let mut binds = Vec::new();
        let mut reports = Vec::new();
        for decision in self.core.schedule(&pods) {
            match decision {
                Decision::Bind {
                    namespace,
                    name,
                    resource_version,
                    node,
                } => {
                    let key = ObjectKey::new("Pod", &namespace, &name);
                    let Some(Object::Pod(pod)) = cache.get(&key) else {
                        continue;
                    };
                    if pod.metadata.resource_version != resource_version {
                        // Changed since the batch was read: place it again.
                        self.pending.insert(key);
                        continue;
                    }
                    self.binding.insert(key.clone());
                    let pod = Box::new(pod.clone());
                    binds.push((key, Command::Bind { pod, node }));
                }
                Decision::Unschedulable {
                    namespace,
                    name,
                    message,
                } => {
                    let key = ObjectKey::new("Pod", &namespace, &name);
                    let told = self.unschedulable.insert(key.clone(), message.clone());
                    if told.as_deref() == Some(message.as_str()) {
                        continue;
                    }
                    if let Some(Object::Pod(pod)) = cache.get(&key) {
                        reports.extend(unschedulable(pod, &message));
                    }
                }
            }
        }
        (binds, reports)
    }

    /// A binding that failed: the pod is pending again, and the core forgets
    /// what it assumed.
    pub fn binding_failed(&mut self, key: &ObjectKey, cache: &Cache) {
        self.binding.remove(key);
        self.core.forget(&key.namespace, &key.name);
        match cache.get(key) {
            Some(Object::Pod(pod)) => {
                self.core.pod_changed(pod);
                if is_pending(pod, &self.scheduler_name) {
                    self.pending.insert(key.clone());
                }
            }
            _ => self.core.pod_removed(&key.namespace, &key.name),
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// The FailedScheduling Event and the PodScheduled=False condition of a
/// pod nothing fits, as kube-scheduler reports it.
fn unschedulable(pod: &Pod, message: &str) -> Vec<Command> {
    let object = Object::Pod(pod.clone());
    let mut commands = vec![Command::Event {
        regarding: reference_to(&object),
        type_: EventType::Warning,
        reason: "FailedScheduling".into(),
        message: message.to_owned(),
    }];
    let current = pod.status.condition("PodScheduled");
    if current.is_none_or(|c| c.status != "False" || c.message != message) {
        let mut updated = pod.clone();
        updated
            .status
            .conditions
            .retain(|c| c.type_ != "PodScheduled");
        updated.status.conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: "Unschedulable".into(),
            message: message.to_owned(),
            last_transition_time: Some(format_time(SystemTime::now())),
            ..PodCondition::default()
        });
        commands.push(Command::UpdateStatus(Box::new(Object::Pod(updated))));
    }
    commands
}
