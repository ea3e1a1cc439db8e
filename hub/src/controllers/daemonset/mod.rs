//! The DaemonSet controller: one pod of a DaemonSet on every node its
//! template can run on (pkg/controller/daemon/daemon_controller.go,
//! update.go, util/daemonset_util.go).
//!
//! Keys: a DaemonSet maps to itself, a Pod to the DaemonSet that controls
//! it, a Node to every DaemonSet. A reconcile
//!
//! 1. places pods ([`placement`]): creates the pod on each node that should
//!    run one and has none (not even one still terminating: daemon pods
//!    often hold host ports and devices, so two never overlap on a node),
//!    deletes the pods of nodes that may no longer keep them, failed pods
//!    (after [`FAILED_POD_RETRY`], with a `FailedDaemonPod` warning) and
//!    duplicates (the oldest stays). Nodes being deleted are left alone;
//! 2. rolls out a changed template ([`rollout`]) when the strategy is
//!    `RollingUpdate` and step 1 had nothing to create or delete (what
//!    Kubernetes' expectations achieve: a replacement just created counts
//!    as unavailable before another old pod goes); with `OnDelete` only
//!    pods created after the user deletes the old ones get the new template;
//! 3. writes the status `kubectl rollout status ds` reads.
//!
//! Pods are created bound (`spec.nodeName` set), not left to the
//! scheduler with a `metadata.name In [node]` affinity as Kubernetes does
//! since 1.12: the node is already chosen, a device may be offline when its
//! pod is created, and a bound pod reaches the device on its next sync
//! without a scheduler round. Their labels are the template's plus
//! `controller-revision-hash` ([`pods::template_hash`] of the template:
//! FNV-1a of its JSON, as `pod-template-hash` is computed; there are no
//! ControllerRevision objects) and `pod-template-generation` (the
//! DaemonSet's `deprecated.daemonset.template.generation`); a pod is up to
//! date when either matches, as in Kubernetes.
//!
//! Not done: adopting orphan pods that match the selector, ControllerRevision
//! history (so no `kubectl rollout undo ds`), `maxSurge` (treated as 0: the
//! old pod goes before the new one comes, which a device's host ports need
//! anyway).

pub mod placement;
pub mod rollout;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use flotilla_shared::model::{DaemonSet, Node, Object, ObjectMeta, Pod, PodSpec, pod_phase};
use flotilla_shared::selector::Selector;

use self::placement::Verdict;
use super::pods::{self, Availability};
use super::{Action, Cache, Command, EventType, ObjectKey, Propagation, Reconciler};
use super::{key_of, reference_to};

/// The label naming the template revision a daemon pod was made from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The label carrying the DaemonSet's template generation.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The DaemonSet annotation the API server counts template changes in.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// How long a failed daemon pod stays before it is deleted and replaced
/// (Kubernetes backs off from 1 s to 15 min in memory; a pure core keeps
/// no memory, so it waits this long after the pod failed).
pub const FAILED_POD_RETRY: Duration = Duration::from_secs(10);

/// The DaemonSet controller's core.
#[derive(Debug, Clone, Copy, Default)]
pub struct DaemonSetController;

impl Reconciler for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset-controller"
    }

    fn keys_for(&self, object: &Object, cache: &Cache) -> Vec<ObjectKey> {
        match object {
            Object::DaemonSet(_) => vec![key_of(object)],
            Object::Pod(pod) => pod
                .metadata
                .owner_references
                .iter()
                .filter(|r| r.controller == Some(true) && r.kind == "DaemonSet")
                .map(|r| ObjectKey::new("DaemonSet", &pod.metadata.namespace, &r.name))
                .collect(),
            Object::Node(_) => cache
                .daemon_sets()
                .map(|ds| ObjectKey::new("DaemonSet", &ds.metadata.namespace, &ds.metadata.name))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn reconcile(&self, key: &ObjectKey, cache: &Cache, now: SystemTime) -> Action {
        let Some(object @ Object::DaemonSet(ds)) = cache.get(key) else {
            return Action::await_change();
        };
        if ds.metadata.deletion_timestamp.is_some() {
            return Action::await_change();
        }
        let selector = ds
            .spec
            .selector
            .as_ref()
            .and_then(|s| Selector::from_label_selector(s).ok());
        let Some(selector) = selector.filter(|s| !s.is_everything()) else {
            return Action::with(vec![Command::Event {
                regarding: reference_to(object),
                type_: EventType::Warning,
                reason: "SelectingAll".to_owned(),
                message: "This daemon set is selecting all pods. A non-empty selector is required."
                    .to_owned(),
            }]);
        };
        Sync::new(object, ds, &selector, cache, now).run()
    }
}

/// One node as this reconcile sees it.
#[derive(Debug)]
struct NodeView<'a> {
    node: &'a Node,
    verdict: Verdict,
    online: bool,
}

/// The state of one reconcile of one DaemonSet.
struct Sync<'a> {
    object: &'a Object,
    ds: &'a DaemonSet,
    cache: &'a Cache,
    now: SystemTime,
    hash: String,
    generation: Option<i64>,
    /// The pod as it would be created (no name, no node yet).
    template_pod: Pod,
    /// The DaemonSet's pods, by the node they are bound to.
    pods_by_node: BTreeMap<&'a str, Vec<&'a Pod>>,
    /// Nodes not being deleted, by name.
    nodes: BTreeMap<&'a str, NodeView<'a>>,
    creates: Vec<Command>,
    deletes: Vec<Command>,
    /// Uids of the pods already being deleted by this reconcile.
    deleting: BTreeSet<&'a str>,
    names: BTreeSet<String>,
    requeue: Option<Duration>,
}

impl<'a> Sync<'a> {
    fn new(
        object: &'a Object,
        ds: &'a DaemonSet,
        selector: &Selector,
        cache: &'a Cache,
        now: SystemTime,
    ) -> Self {
        let hash = pods::template_hash(&ds.spec.template);
        let generation = ds
            .metadata
            .annotations
            .get(TEMPLATE_GENERATION_ANNOTATION)
            .and_then(|g| g.parse().ok());
        let template_pod = template_pod(object, ds, &hash, generation);
        let mut pods_by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
        for dependent in cache.dependents_of(&ds.metadata.uid) {
            if let Object::Pod(pod) = dependent
                && pod.metadata.namespace == ds.metadata.namespace
                && pods::is_controlled_by(&pod.metadata, &ds.metadata.uid)
                && pod.is_bound()
                && selector.matches(&pod.metadata.labels)
            {
                pods_by_node
                    .entry(pod.spec.node_name.as_str())
                    .or_default()
                    .push(pod);
            }
        }
        for pods in pods_by_node.values_mut() {
            pods.sort_by(|a, b| oldest_first(a, b));
        }
        let nodes = cache
            .nodes()
            .filter(|node| node.metadata.deletion_timestamp.is_none())
            .map(|node| {
                let view = NodeView {
                    node,
                    verdict: placement::node_should_run(&template_pod, node),
                    online: node.is_ready(),
                };
                (node.metadata.name.as_str(), view)
            })
            .collect();
        Sync {
            object,
            ds,
            cache,
            now,
            hash,
            generation,
            template_pod,
            pods_by_node,
            nodes,
            creates: Vec::new(),
            deletes: Vec::new(),
            deleting: BTreeSet::new(),
            names: BTreeSet::new(),
            requeue: None,
        }
    }

    fn run(mut self) -> Action {
        let names: Vec<&'a str> = self.nodes.keys().copied().collect();
        for name in names {
            self.manage_node(name);
        }
        let placed = self.deleting.is_empty() && !self.creates.iter().any(is_create);
        let rolling = self.ds.spec.update_strategy.type_ != "OnDelete";
        if rolling && placed {
            for pod in rollout::pods_to_replace(&self) {
                self.delete(pod);
            }
        }
        let mut commands = std::mem::take(&mut self.creates);
        commands.append(&mut self.deletes);
        if let Some(update) = self.status_update() {
            commands.push(update);
        }
        let mut action = Action::with(commands);
        if let Some(after) = self.requeue {
            action = action.requeue(after);
        }
        action
    }

    /// `podsShouldBeOnNode` for one node.
    fn manage_node(&mut self, name: &'a str) {
        let view = &self.nodes[name];
        let (node, verdict) = (view.node, view.verdict);
        let pods = self.pods_by_node.get(name).cloned().unwrap_or_default();
        if verdict.should_run && pods.is_empty() {
            self.create_on(node);
        } else if verdict.should_continue_running {
            let mut running = Vec::new();
            for pod in pods {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                if pod.status.phase == pod_phase::FAILED {
                    self.delete_failed(pod, name);
                } else {
                    running.push(pod);
                }
            }
            // Sorted oldest first: the oldest stays.
            for duplicate in running.into_iter().skip(1) {
                self.delete(duplicate);
            }
        } else {
            for pod in pods {
                if pod.metadata.deletion_timestamp.is_none() {
                    self.delete(pod);
                }
            }
        }
    }

    fn create_on(&mut self, node: &'a Node) {
        let regarding = reference_to(self.object);
        if let Some(reason) = placement::misfit(
            &self.template_pod,
            node,
            self.cache.pods_on_node(&node.metadata.name),
        ) {
            self.creates.push(Command::Event {
                regarding,
                type_: EventType::Warning,
                reason: "FailedPlacement".to_owned(),
                message: format!("failed to place pod on {:?}: {reason}", node.metadata.name),
            });
            return;
        }
        let meta = &self.ds.metadata;
        let name = pods::new_pod_name(
            self.cache,
            &meta.namespace,
            &meta.name,
            &format!("{}/{}/{}", meta.uid, node.metadata.name, self.hash),
            &mut self.names,
        );
        let mut pod = self.template_pod.clone();
        pod.metadata.name = name.clone();
        pod.spec.node_name = node.metadata.name.clone();
        self.creates
            .push(Command::Create(Box::new(Object::Pod(pod))));
        self.creates.push(Command::Event {
            regarding,
            type_: EventType::Normal,
            reason: "SuccessfulCreate".to_owned(),
            message: format!("Created pod: {name}"),
        });
    }

    fn delete_failed(&mut self, pod: &'a Pod, node: &str) {
        let failed_for = self
            .now
            .duration_since(pods::finished_at(pod))
            .unwrap_or_default();
        if failed_for < FAILED_POD_RETRY {
            self.requeue_after(FAILED_POD_RETRY - failed_for);
            return;
        }
        let meta = &pod.metadata;
        self.deletes.push(Command::Event {
            regarding: reference_to(self.object),
            type_: EventType::Warning,
            reason: "FailedDaemonPod".to_owned(),
            message: format!(
                "Found failed daemon pod {}/{} on node {node}, will try to kill it",
                meta.namespace, meta.name
            ),
        });
        self.delete(pod);
    }

    fn delete(&mut self, pod: &'a Pod) {
        if !self.deleting.insert(pod.metadata.uid.as_str()) {
            return;
        }
        self.deletes.push(Command::Delete {
            key: ObjectKey::new("Pod", &pod.metadata.namespace, &pod.metadata.name),
            uid: Some(pod.metadata.uid.clone()),
            propagation: Propagation::Background,
        });
        self.deletes.push(Command::Event {
            regarding: reference_to(self.object),
            type_: EventType::Normal,
            reason: "SuccessfulDelete".to_owned(),
            message: format!("Deleted pod: {}", pod.metadata.name),
        });
    }

    fn requeue_after(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |current| current.min(after)));
    }

    /// Whether `pod` was made from the current template (`IsPodUpdated`).
    fn is_updated(&self, pod: &Pod) -> bool {
        let labels = &pod.metadata.labels;
        labels.get(REVISION_HASH_LABEL) == Some(&self.hash)
            || self
                .generation
                .is_some_and(|g| labels.get(TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()))
    }

    /// Whether the pod serves: its node is online and it has been ready
    /// for `minReadySeconds`. A pod on an offline node is not available,
    /// whatever its last reported condition says.
    fn availability(&self, pod: &Pod) -> Availability {
        let online = self
            .nodes
            .get(pod.spec.node_name.as_str())
            .is_some_and(|view| view.online);
        if !online {
            return Availability::NotReady;
        }
        pods::availability(pod, self.ds.spec.min_ready_seconds, self.now)
    }

    /// `updateDaemonSetStatus`, from the pods as the cache shows them.
    fn status_update(&mut self) -> Option<Command> {
        let mut status = self.ds.status.clone();
        let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
        let (mut ready, mut available, mut updated) = (0, 0, 0);
        let mut wait = None::<Duration>;
        for (name, view) in &self.nodes {
            let oldest = self.pods_by_node.get(name).and_then(|pods| pods.first());
            if !view.verdict.should_run {
                misscheduled += i32::from(oldest.is_some());
                continue;
            }
            desired += 1;
            let Some(pod) = oldest else { continue };
            current += 1;
            match self.availability(pod) {
                Availability::NotReady => {}
                Availability::ReadySoon(after) => {
                    ready += 1;
                    wait = Some(wait.map_or(after, |w| w.min(after)));
                }
                Availability::Available => {
                    ready += 1;
                    available += 1;
                }
            }
            updated += i32::from(self.is_updated(pod));
        }
        if let Some(after) = wait {
            self.requeue_after(after);
        }
        status.desired_number_scheduled = desired;
        status.current_number_scheduled = current;
        status.number_misscheduled = misscheduled;
        status.number_ready = ready;
        status.number_available = available;
        status.number_unavailable = desired - available;
        status.updated_number_scheduled = updated;
        status.observed_generation = self.ds.metadata.generation;
        if status == self.ds.status {
            return None;
        }
        let mut ds = self.ds.clone();
        ds.status = status;
        Some(Command::UpdateStatus(Box::new(Object::DaemonSet(ds))))
    }
}

/// The pod a DaemonSet creates, before its name and node are chosen
/// (`NewPod` and `CreatePodTemplate`).
fn template_pod(owner: &Object, ds: &DaemonSet, hash: &str, generation: Option<i64>) -> Pod {
    let template = &ds.spec.template;
    let mut labels = template.metadata.labels.clone();
    if let Some(generation) = generation {
        labels.insert(TEMPLATE_GENERATION_LABEL.to_owned(), generation.to_string());
    }
    labels.insert(REVISION_HASH_LABEL.to_owned(), hash.to_owned());
    let mut spec: PodSpec = template.spec.clone();
    placement::add_daemon_tolerations(&mut spec);
    Pod {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        metadata: ObjectMeta {
            namespace: ds.metadata.namespace.clone(),
            labels,
            annotations: template.metadata.annotations.clone(),
            finalizers: template.metadata.finalizers.clone(),
            owner_references: vec![pods::controller_ref(owner)],
            ..ObjectMeta::default()
        },
        spec,
        ..Pod::default()
    }
}

fn is_create(command: &Command) -> bool {
    matches!(command, Command::Create(_))
}

/// Oldest first (`podByCreationTimestampAndPhase`), then by name.
fn oldest_first(a: &Pod, b: &Pod) -> std::cmp::Ordering {
    let created = |p: &Pod| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| crate::api::time::parse_time(&t.0))
    };
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}
