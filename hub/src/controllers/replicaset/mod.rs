//! The ReplicaSet controller: keeps `spec.replicas` active pods stamped from
//! the template, ported from Kubernetes' `pkg/controller/replicaset/replica_set.go`
//! (with `pkg/controller/controller_utils.go` for pod creation, the active
//! pod filter and the deletion ranking, and
//! `pkg/controller/controller_ref_manager.go` for adoption and release).
//!
//! One reconcile of a ReplicaSet:
//!
//! 1. claims pods: its own active pods that still match the selector, plus
//!    active orphans that match (adopted by an Update adding a controller
//!    ownerReference); owned pods that no longer match are released (an
//!    Update removing the reference);
//! 2. creates the missing pods (at most [`BURST_REPLICAS`] per reconcile,
//!    `generateName: <rs>-`) or deletes the surplus, choosing the pods to
//!    delete by Kubernetes' ranking ([`deletion_order`]);
//! 3. writes `status` (replicas, fullyLabeledReplicas, readyReplicas,
//!    availableReplicas, observedGeneration) only when it changed.
//!
//! A ReplicaSet being deleted is left alone.
//!
//! Differences from Kubernetes, because a core is pure:
//! - Kubernetes' "expectations" (do not act again before the cache shows
//!   one's own creations and deletions) are the runtime's job: it must not
//!   reconcile a key again before the cache reflects the writes of that key's
//!   previous action.
//! - Kubernetes creates in slow-start batches and stops at the first
//!   failure; here one reconcile emits every Create, and the runtime carries
//!   them out in [`slow_start_batches`]. Failures are reported back through
//!   [`ReplicaSetController::replica_failure`] (the `FailedCreate` /
//!   `FailedDelete` Event and the `ReplicaFailure` condition).
//! - The `SuccessfulCreate` Event says `Created pod from template`, not
//!   `Created pod: <name>`: the name is generated when the runtime creates it.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use flotilla_shared::model::{
    Object, ObjectMeta, ObjectReference, OwnerReference, Pod, PodTemplateSpec, ReplicaSet,
    ReplicaSetCondition, ReplicaSetStatus, condition_status, pod_condition, pod_phase,
};
use flotilla_shared::selector::Selector;

use super::{Action, Cache, Command, EventType, ObjectKey, Propagation, Reconciler};
use crate::api::time::{format_time, parse_time};

/// Most pods one reconcile creates or deletes (Kubernetes' `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// The first slow-start batch (`controller.SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;
/// The annotation that makes a pod cheaper or dearer to delete on scale-down.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The `ReplicaSetCondition` type reporting failed creations or deletions.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The ReplicaSet controller's core.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplicaSetController;

impl Reconciler for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset-controller"
    }

    fn keys_for(&self, object: &Object, cache: &Cache) -> Vec<ObjectKey> {
        match object {
            Object::ReplicaSet(rs) => vec![rs_key(&rs.metadata)],
            Object::Pod(pod) => match controller_of(&pod.metadata) {
                Some(owner) if owner.kind == "ReplicaSet" => {
                    vec![ObjectKey::new(
                        "ReplicaSet",
                        &pod.metadata.namespace,
                        &owner.name,
                    )]
                }
                Some(_) => Vec::new(),
                // An orphan: every ReplicaSet that could adopt it.
                None => cache
                    .in_namespace("ReplicaSet", &pod.metadata.namespace)
                    .filter_map(|object| match object {
                        Object::ReplicaSet(rs) if selects(rs, &pod.metadata) => {
                            Some(rs_key(&rs.metadata))
                        }
                        _ => None,
                    })
                    .collect(),
            },
            _ => Vec::new(),
        }
    }

    fn reconcile(&self, key: &ObjectKey, cache: &Cache, now: SystemTime) -> Action {
        let Some(Object::ReplicaSet(rs)) = cache.get(key) else {
            return Action::await_change();
        };
        if rs.metadata.deletion_timestamp.is_some() {
            return Action::await_change();
        }
        let Some(Ok(selector)) = rs.spec.selector.as_ref().map(Selector::from_label_selector)
        else {
            // Validation refuses such a ReplicaSet; there is nothing safe to do.
            return Action::await_change();
        };
        let mut commands = Vec::new();
        let pods = claim_pods(rs, &selector, cache, &mut commands);
        let replicas = replicas_of(rs.spec.replicas);
        let diff = pods.len() as i64 - i64::from(replicas);
        manage_replicas(rs, &pods, diff, cache, now, &mut commands);

        let status = calculate_status(rs, &pods, diff == 0, now);
        if status != rs.status {
            let mut updated = rs.clone();
            updated.status = status;
            commands.push(Command::UpdateStatus(Box::new(Object::ReplicaSet(updated))));
        }
        let mut action = Action::with(commands);
        if let Some(after) = next_availability(rs, &pods, now) {
            action = action.requeue(after);
        }
        action
    }
}

impl ReplicaSetController {
    /// What to do when the runtime failed to create (`creating`) or delete a
    /// pod for `rs`: the Warning Event Kubernetes' pod control records
    /// (`FailedCreate` "Error creating: ..." / `FailedDelete` "Error
    /// deleting: ...") and, unless one is already there, the `ReplicaFailure`
    /// condition (removed again by the first reconcile that finds the pod
    /// count right).
    pub fn replica_failure(
        rs: &ReplicaSet,
        creating: bool,
        error: &str,
        now: SystemTime,
    ) -> Vec<Command> {
        let (reason, verb) = if creating {
            ("FailedCreate", "creating")
        } else {
            ("FailedDelete", "deleting")
        };
        let mut commands = vec![Command::Event {
            regarding: rs_reference(rs),
            type_: EventType::Warning,
            reason: reason.to_owned(),
            message: format!("Error {verb}: {error}"),
        }];
        if !rs
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == REPLICA_FAILURE)
        {
            let mut updated = rs.clone();
            updated.status.conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.to_owned(),
                status: condition_status::TRUE.to_owned(),
                last_transition_time: Some(format_time(now)),
                reason: reason.to_owned(),
                message: error.to_owned(),
            });
            commands.push(Command::UpdateStatus(Box::new(Object::ReplicaSet(updated))));
        }
        commands
    }
}

/// The batch sizes in which `total` creations are carried out, as
/// Kubernetes' `slowStartBatch`: 1, 2, 4, ... (the last one what is left).
/// A runtime stops after the first batch with a failure, so a quota or an
/// admission error costs one call rather than hundreds.
pub fn slow_start_batches(total: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = total;
    let mut size = SLOW_START_INITIAL_BATCH_SIZE;
    while remaining > 0 {
        let batch = size.min(remaining);
        batches.push(batch);
        remaining -= batch;
        size *= 2;
    }
    batches
}

// ---------------------------------------------------------------------------
// Helpers shared with the Deployment controller

/// `spec.replicas`, `1` when absent (the default).
pub(crate) fn replicas_of(replicas: Option<i32>) -> i32 {
    replicas.unwrap_or(1)
}

/// The ownerReference with `controller: true`, if any (`metav1.GetControllerOf`).
pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .find(|owner| owner.controller == Some(true))
}

/// A controller reference to an owner (`metav1.NewControllerRef`).
pub(crate) fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether the pod still counts (`controller.IsPodActive`): not terminal and
/// not being deleted.
pub(crate) fn is_pod_active(pod: &Pod) -> bool {
    !pod.is_terminal() && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's `Ready` condition last turned `True`.
fn ready_since(pod: &Pod) -> Option<SystemTime> {
    pod.status
        .condition(pod_condition::READY)
        .filter(|c| c.status == condition_status::TRUE)
        .and_then(|c| c.last_transition_time.as_ref())
        .and_then(|t| parse_time(&t.0))
}

/// Whether the pod has been ready for `min_ready_seconds`
/// (`podutil.IsPodAvailable`: strictly more than that long ago).
pub(crate) fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: SystemTime) -> bool {
    if !pod.is_ready() {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod).is_some_and(|since| since + seconds(min_ready_seconds) < now)
}

fn seconds(n: i32) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

fn rs_key(meta: &ObjectMeta) -> ObjectKey {
    ObjectKey::new("ReplicaSet", &meta.namespace, &meta.name)
}

/// An Event's reference to a ReplicaSet.
pub(crate) fn rs_reference(rs: &ReplicaSet) -> ObjectReference {
    ObjectReference {
        kind: "ReplicaSet".to_owned(),
        namespace: rs.metadata.namespace.clone(),
        name: rs.metadata.name.clone(),
        uid: rs.metadata.uid.clone(),
        api_version: "apps/v1".to_owned(),
        resource_version: rs.metadata.resource_version.clone(),
        field_path: String::new(),
    }
}

/// Whether `rs`'s selector selects an object with `meta`'s labels.
fn selects(rs: &ReplicaSet, meta: &ObjectMeta) -> bool {
    rs.spec
        .selector
        .as_ref()
        .and_then(|s| Selector::from_label_selector(s).ok())
        .is_some_and(|s| s.matches(&meta.labels))
}

/// The pods `owner` controls, active or not, through the owner index.
pub(crate) fn controlled_pods<'a>(
    cache: &'a Cache,
    owner_uid: &'a str,
) -> impl Iterator<Item = &'a Pod> + 'a {
    cache
        .dependents_of(owner_uid)
        .filter_map(move |object| match object {
            Object::Pod(pod)
                if controller_of(&pod.metadata).is_some_and(|c| c.uid == owner_uid) =>
            {
                Some(pod)
            }
            _ => None,
        })
}

// ---------------------------------------------------------------------------
// Claiming pods

/// The active pods `rs` owns after adoption and release
/// (`ControllerRefManager.ClaimPods` over `FilterActivePods`), in name order;
/// pushes the Updates that adopt and release.
fn claim_pods<'a>(
    rs: &'a ReplicaSet,
    selector: &Selector,
    cache: &'a Cache,
    commands: &mut Vec<Command>,
) -> Vec<&'a Pod> {
    let mut claimed = Vec::new();
    for pod in controlled_pods(cache, &rs.metadata.uid) {
        if !is_pod_active(pod) {
            continue;
        }
        if selector.matches(&pod.metadata.labels) {
            claimed.push(pod);
        } else {
            let mut released = pod.clone();
            released
                .metadata
                .owner_references
                .retain(|owner| owner.uid != rs.metadata.uid);
            commands.push(Command::Update(Box::new(Object::Pod(released))));
        }
    }
    // Orphans: the namespace's pods without a controller (Kubernetes keeps
    // an index of them; the cache indexes owners, so this is a scan).
    for object in cache.in_namespace("Pod", &rs.metadata.namespace) {
        let Object::Pod(pod) = object else { continue };
        if controller_of(&pod.metadata).is_some()
            || !is_pod_active(pod)
            || !selector.matches(&pod.metadata.labels)
        {
            continue;
        }
        let mut adopted = pod.clone();
        adopted.metadata.owner_references.push(controller_ref(
            "apps/v1",
            "ReplicaSet",
            &rs.metadata,
        ));
        commands.push(Command::Update(Box::new(Object::Pod(adopted))));
        claimed.push(pod);
    }
    claimed.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    claimed
}

// ---------------------------------------------------------------------------
// Creating and deleting

fn manage_replicas(
    rs: &ReplicaSet,
    pods: &[&Pod],
    diff: i64,
    cache: &Cache,
    now: SystemTime,
    commands: &mut Vec<Command>,
) {
    let count = usize::try_from(diff.unsigned_abs())
        .unwrap_or(usize::MAX)
        .min(BURST_REPLICAS);
    if diff < 0 {
        let mut events = Vec::with_capacity(count);
        for _ in 0..count {
            let pod = pod_from_template(&rs.spec.template, rs);
            commands.push(Command::Create(Box::new(Object::Pod(pod))));
            events.push(Command::Event {
                regarding: rs_reference(rs),
                type_: EventType::Normal,
                reason: "SuccessfulCreate".to_owned(),
                message: "Created pod from template".to_owned(),
            });
        }
        commands.extend(events);
    } else if diff > 0 {
        let related = related_pods(rs, cache);
        let doomed = deletion_order(pods, &related, now);
        let mut events = Vec::with_capacity(count);
        for pod in doomed.into_iter().take(count) {
            commands.push(Command::Delete {
                key: ObjectKey::new("Pod", &pod.metadata.namespace, &pod.metadata.name),
                uid: Some(pod.metadata.uid.clone()),
                propagation: Propagation::Background,
            });
            events.push(Command::Event {
                regarding: rs_reference(rs),
                type_: EventType::Normal,
                reason: "SuccessfulDelete".to_owned(),
                message: format!("Deleted pod: {}", pod.metadata.name),
            });
        }
        commands.extend(events);
    }
}

/// A new pod for `rs` (`controller.GetPodFromTemplate`): the template's
/// labels, annotations, finalizers and spec, `generateName: <rs>-`, and a
/// controller reference to `rs`.
pub(crate) fn pod_from_template(template: &PodTemplateSpec, rs: &ReplicaSet) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.namespace = rs.metadata.namespace.clone();
    pod.metadata.generate_name = format!("{}-", rs.metadata.name);
    pod.metadata.labels = template.metadata.labels.clone();
    pod.metadata.annotations = template.metadata.annotations.clone();
    pod.metadata.finalizers = template.metadata.finalizers.clone();
    pod.metadata.owner_references = vec![controller_ref("apps/v1", "ReplicaSet", &rs.metadata)];
    pod.spec = template.spec.clone();
    pod
}

/// The active pods of every ReplicaSet with the same controller as `rs`
/// (its Deployment's other revisions), or of `rs` alone
/// (`getIndirectlyRelatedPods`).
fn related_pods<'a>(rs: &'a ReplicaSet, cache: &'a Cache) -> Vec<&'a Pod> {
    let Some(owner) = controller_of(&rs.metadata) else {
        return Vec::new();
    };
    cache
        .dependents_of(&owner.uid)
        .filter_map(|object| match object {
            Object::ReplicaSet(sibling)
                if controller_of(&sibling.metadata).is_some_and(|c| c.uid == owner.uid) =>
            {
                Some(sibling)
            }
            _ => None,
        })
        .flat_map(|sibling| controlled_pods(cache, &sibling.metadata.uid))
        .collect()
}

/// `pods` in the order Kubernetes deletes them (`ActivePodsWithRanks` with
/// the default feature gates, `PodDeletionCost` and `LogarithmicScaleDown`):
/// unscheduled before scheduled; Pending before Unknown before Running; not
/// ready before ready; lower `pod-deletion-cost` first; more active pods of
/// the same Deployment on its node first; ready for less time first (by
/// powers of two); more container restarts first; newer first.
pub fn deletion_order<'a>(pods: &[&'a Pod], related: &[&Pod], now: SystemTime) -> Vec<&'a Pod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related.iter().filter(|pod| is_pod_active(pod)) {
        *on_node.entry(pod.spec.node_name.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> = pods
        .iter()
        .map(|pod| {
            let rank = on_node
                .get(pod.spec.node_name.as_str())
                .copied()
                .unwrap_or(0);
            (*pod, rank)
        })
        .collect();
    ranked.sort_by(|a, b| compare_for_deletion(a, b, now));
    ranked.into_iter().map(|(pod, _)| pod).collect()
}

fn phase_ordinal(phase: &str) -> u8 {
    match phase {
        pod_phase::UNKNOWN => 1,
        pod_phase::RUNNING => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .get(POD_DELETION_COST)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (regular, sidecar) maximum restart counts.
fn max_restarts(pod: &Pod) -> (i32, i32) {
    let regular = pod
        .status
        .container_statuses
        .iter()
        .map(|s| s.restart_count)
        .max()
        .unwrap_or(0);
    let sidecar = pod
        .status
        .init_container_statuses
        .iter()
        .filter(|s| {
            pod.spec
                .init_containers
                .iter()
                .any(|c| c.name == s.name && c.is_sidecar())
        })
        .map(|s| s.restart_count)
        .max()
        .unwrap_or(0);
    (regular, sidecar)
}

/// `floor(log2(now - t))` in nanoseconds, `-1` for a time not in the past
/// (`logarithmicRankDiff`'s buckets).
fn log_bucket(t: SystemTime, now: SystemTime) -> i64 {
    match now.duration_since(t) {
        Ok(d) if !d.is_zero() => i64::from(127 - d.as_nanos().leading_zeros()),
        _ => -1,
    }
}

/// "Less" means "deleted first".
fn compare_for_deletion(a: &(&Pod, usize), b: &(&Pod, usize), now: SystemTime) -> Ordering {
    let (pa, ra) = a;
    let (pb, rb) = b;
    // 1. Unassigned before assigned.
    let (na, nb) = (&pa.spec.node_name, &pb.spec.node_name);
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let order = phase_ordinal(&pa.status.phase).cmp(&phase_ordinal(&pb.status.phase));
    if order != Ordering::Equal {
        return order;
    }
    // 3. Not ready before ready.
    let (ready_a, ready_b) = (pa.is_ready(), pb.is_ready());
    if ready_a != ready_b {
        return if ready_a {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // 4. Lower deletion cost first.
    let order = deletion_cost(pa).cmp(&deletion_cost(pb));
    if order != Ordering::Equal {
        return order;
    }
    // 5. Doubled up (more related pods on the node) first.
    let order = rb.cmp(ra);
    if order != Ordering::Equal {
        return order;
    }
    // 6. Ready for less time first, in logarithmic buckets.
    if ready_a && ready_b {
        let order = compare_times_newer_first(ready_since(pa), ready_since(pb), pa, pb, now);
        if order != Ordering::Equal {
            return order;
        }
    }
    // 7. More restarts first.
    let order = max_restarts(pb).cmp(&max_restarts(pa));
    if order != Ordering::Equal {
        return order;
    }
    // 8. Newer (or without a creation time) first.
    let created = |pod: &Pod| {
        pod.metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| parse_time(&t.0))
    };
    compare_times_newer_first(created(pa), created(pb), pa, pb, now)
}

/// `afterOrZero` with logarithmic buckets: a missing time first, then the
/// later time, times in the same power-of-two age bucket ordered by uid.
fn compare_times_newer_first(
    a: Option<SystemTime>,
    b: Option<SystemTime>,
    pa: &Pod,
    pb: &Pod,
    now: SystemTime,
) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(ta), Some(tb)) if ta == tb => Ordering::Equal,
        (Some(ta), Some(tb)) => match log_bucket(ta, now).cmp(&log_bucket(tb, now)) {
            Ordering::Equal => pa.metadata.uid.cmp(&pb.metadata.uid),
            order => order,
        },
    }
}

// ---------------------------------------------------------------------------
// Status

/// The status `rs` should have (`calculateStatus`); `settled` says the pod
/// count is right, which clears a `ReplicaFailure` condition.
fn calculate_status(
    rs: &ReplicaSet,
    pods: &[&Pod],
    settled: bool,
    now: SystemTime,
) -> ReplicaSetStatus {
    let template_labels = &rs.spec.template.metadata.labels;
    let mut status = rs.status.clone();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.iter().filter(|pod| f(pod)).count()).unwrap_or(i32::MAX)
    };
    status.replicas = count(&|_| true);
    status.fully_labeled_replicas = count(&|pod| {
        template_labels
            .iter()
            .all(|(k, v)| pod.metadata.labels.get(k) == Some(v))
    });
    status.ready_replicas = count(&|pod| pod.is_ready());
    status.available_replicas = count(&|pod| is_pod_available(pod, rs.spec.min_ready_seconds, now));
    status.observed_generation = rs.metadata.generation;
    if settled {
        status.conditions.retain(|c| c.type_ != REPLICA_FAILURE);
    }
    status
}

/// How long until the next ready pod becomes available, when some are
/// waiting out `minReadySeconds` (Kubernetes resyncs after `minReadySeconds`).
fn next_availability(rs: &ReplicaSet, pods: &[&Pod], now: SystemTime) -> Option<Duration> {
    let min_ready = rs.spec.min_ready_seconds;
    if min_ready <= 0 {
        return None;
    }
    pods.iter()
        .filter(|pod| pod.is_ready() && !is_pod_available(pod, min_ready, now))
        .filter_map(|pod| ready_since(pod))
        .map(|since| {
            // Available strictly after since + minReadySeconds; timestamps have
            // whole seconds, so a second later is the first moment that counts.
            (since + seconds(min_ready) + Duration::from_secs(1))
                .duration_since(now)
                .unwrap_or(Duration::from_secs(1))
        })
        .min()
}

#[cfg(test)]
mod tests;
