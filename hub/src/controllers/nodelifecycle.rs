//! The node lifecycle controller: notices devices that stopped reporting,
//! marks their Nodes `Unknown`, taints Nodes by their conditions, and evicts
//! the pods that do not tolerate a node's `NoExecute` taints.
//!
//! Ported from Kubernetes' `pkg/controller/nodelifecycle/node_lifecycle_controller.go`
//! (`tryUpdateNodeHealth`, `doNoScheduleTaintingPass`,
//! `processTaintBaseEviction`, `MarkPodsNotReady`) and
//! `pkg/controller/tainteviction/taint_eviction.go` (the eviction of pods
//! from `NoExecute`-tainted nodes). One reconcile of a Node takes one step
//! and the runtime reconciles it again once the cache shows the write:
//!
//! 1. liveness: a node last heard of more than `grace_period` ago gets its
//!    `Ready`, `MemoryPressure`, `DiskPressure` and `PIDPressure` conditions
//!    set to `Unknown` (`NodeStatusUnknown`, "Kubelet stopped posting node
//!    status.") and the Event `NodeNotReady`;
//! 2. taints, from the conditions: `NoSchedule` taints as
//!    `TaintNodesByCondition` sets them (`not-ready`, `unreachable`,
//!    `memory-pressure`, `disk-pressure`, `pid-pressure`,
//!    `network-unavailable`, `unschedulable`) and the `NoExecute` taint
//!    `node.kubernetes.io/unreachable` (Ready `Unknown`) or
//!    `node.kubernetes.io/not-ready` (Ready `False`), removed when the
//!    device reports Ready again (the Event `NodeReady`); every added taint
//!    carries `timeAdded`, as `SwapNodeControllerTaint` writes it;
//! 3. pods: on a node whose Ready is `Unknown`, pods are marked not ready
//!    (so Endpoints stop sending them traffic); on a node with `NoExecute`
//!    taints, a pod that does not tolerate one of them is deleted at once,
//!    one whose matching toleration has `tolerationSeconds` when
//!    `timeAdded + tolerationSeconds` has passed, and one that tolerates
//!    them forever stays (Events `TaintManagerEviction`).
//!
//! Where Flotilla differs, and why:
//!
//! - Devices are autonomous by default. The API calls [`default_tolerations`]
//!   when a pod is created: every pod tolerates `not-ready` and
//!   `unreachable` `NoExecute` forever unless it says otherwise (Kubernetes'
//!   `DefaultTolerationSeconds` admission gives 300 s). A device that goes
//!   offline keeps running its pods and the hub keeps them bound; a pod that
//!   wants Kubernetes' behaviour declares the toleration itself with
//!   `tolerationSeconds: 300` (or `0` to leave at once).
//! - Liveness is read from the objects: the newest of the Lease's
//!   `spec.renewTime` (namespace `kube-node-lease`) and the Ready
//!   condition's `lastHeartbeatTime`, or the node's creation when it never
//!   reported. Kubernetes instead remembers when it saw them change; this
//!   core keeps no state between reconciles. The same reason makes the
//!   eviction deadline count from the taint's `timeAdded`; a `NoExecute`
//!   taint written without one (by a user) is given one.
//! - A Lease whose `leaseDurationSeconds` is longer than the grace period
//!   extends it: the gateway sets it from the device's heartbeat interval
//!   (minutes, on metered links).
//! - No zone disruption modes or eviction rate limits: with pods tolerating
//!   an offline device by default, a fleet-wide outage evicts nothing.

use std::time::{Duration, SystemTime};

use flotilla_shared::model::{
    Lease, Node, NodeCondition, Object, Pod, PodCondition, Taint, Toleration, condition_status,
    node_condition, node_taints, pod_condition, taint_effect, toleration_operator,
};

use super::{
    Action, Cache, Command, EventType, ObjectKey, Propagation, Reconciler, key_of, reference_to,
};
use crate::api::time::{format_time, parse_time};

/// Where agents renew their nodes' Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Kubernetes' `--node-monitor-grace-period`.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(40);

/// The conditions set to `Unknown` when the device stops reporting
/// (`NetworkUnavailable` is left alone, as Kubernetes does).
const REPORTED_CONDITIONS: [&str; 4] = [
    node_condition::READY,
    node_condition::MEMORY_PRESSURE,
    node_condition::DISK_PRESSURE,
    node_condition::PID_PRESSURE,
];

/// `nodeConditionToTaintKeyStatusMap`: (condition, status) → the key of the
/// `NoSchedule` taint it puts on the node.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    (
        node_condition::READY,
        condition_status::FALSE,
        node_taints::NOT_READY,
    ),
    (
        node_condition::READY,
        condition_status::UNKNOWN,
        node_taints::UNREACHABLE,
    ),
    (
        node_condition::MEMORY_PRESSURE,
        condition_status::TRUE,
        node_taints::MEMORY_PRESSURE,
    ),
    (
        node_condition::DISK_PRESSURE,
        condition_status::TRUE,
        node_taints::DISK_PRESSURE,
    ),
    (
        node_condition::NETWORK_UNAVAILABLE,
        condition_status::TRUE,
        node_taints::NETWORK_UNAVAILABLE,
    ),
    (
        node_condition::PID_PRESSURE,
        condition_status::TRUE,
        node_taints::PID_PRESSURE,
    ),
];

/// Gives `pod` the tolerations that keep it bound to a device that is
/// offline or not ready: `node.kubernetes.io/not-ready` and
/// `node.kubernetes.io/unreachable`, `Exists`, `NoExecute`, without
/// `tolerationSeconds` — unless it already tolerates that key with effect
/// `NoExecute` (or any key or effect), as Kubernetes'
/// `DefaultTolerationSeconds` admission decides. The API calls it when a
/// pod is created (never on update: tolerations may only be added then).
pub fn default_tolerations(pod: &mut Pod) {
    for key in [node_taints::NOT_READY, node_taints::UNREACHABLE] {
        let tolerated = pod.spec.tolerations.iter().any(|t| {
            (t.key.is_empty() || t.key == key)
                && (t.effect.is_empty() || t.effect == taint_effect::NO_EXECUTE)
        });
        if !tolerated {
            pod.spec.tolerations.push(Toleration {
                key: key.to_owned(),
                operator: toleration_operator::EXISTS.to_owned(),
                effect: taint_effect::NO_EXECUTE.to_owned(),
                ..Toleration::default()
            });
        }
    }
}

/// The node lifecycle controller's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLifecycleController {
    /// How long a node may stay silent before it is `Unknown`.
    pub grace_period: Duration,
}

impl Default for NodeLifecycleController {
    fn default() -> Self {
        NodeLifecycleController {
            grace_period: DEFAULT_GRACE_PERIOD,
        }
    }
}

impl Reconciler for NodeLifecycleController {
    fn name(&self) -> &'static str {
        "node-controller"
    }

    fn keys_for(&self, object: &Object, cache: &Cache) -> Vec<ObjectKey> {
        match object {
            Object::Node(_) => vec![key_of(object)],
            Object::Lease(lease) if lease.metadata.namespace == NODE_LEASE_NAMESPACE => {
                vec![ObjectKey::new("Node", "", &lease.metadata.name)]
            }
            // A pod matters only on a node whose pods this controller acts on.
            Object::Pod(pod) if pod.is_bound() => match cache.find("Node", "", &pod.spec.node_name)
            {
                Some(node @ Object::Node(n)) if acts_on_pods(n) => vec![key_of(node)],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn reconcile(&self, key: &ObjectKey, cache: &Cache, now: SystemTime) -> Action {
        let Some(object @ Object::Node(node)) = cache.get(key) else {
            return Action::await_change();
        };
        let lease = match cache.find("Lease", NODE_LEASE_NAMESPACE, &node.metadata.name) {
            Some(Object::Lease(lease)) => Some(lease),
            _ => None,
        };
        let mut action = Action::await_change();
        match last_heard(node, lease).map(|at| at + grace_period(self.grace_period, lease)) {
            Some(expires) if now < expires => {
                action = action.requeue(expires.duration_since(now).unwrap_or_default());
            }
            _ => {
                if let Some(unknown) = mark_unknown(node, now) {
                    let mut commands = vec![Command::UpdateStatus(Box::new(Object::Node(unknown)))];
                    if node.is_ready() {
                        commands.push(node_event(object, "NodeNotReady"));
                    }
                    return Action::with(commands);
                }
            }
        }
        if let Some(tainted) = reconcile_taints(node, now) {
            let recovered = node.is_ready()
                && node
                    .spec
                    .taints
                    .iter()
                    .any(|t| t.effect == taint_effect::NO_EXECUTE && is_health_taint(&t.key));
            action
                .commands
                .push(Command::Update(Box::new(Object::Node(tainted))));
            if recovered {
                action.commands.push(node_event(object, "NodeReady"));
            }
            return action;
        }
        let (commands, next) = pod_commands(node, cache, now);
        action.commands = commands;
        match next {
            Some(after) => action.requeue(after),
            None => action,
        }
    }
}

/// Whether pod changes on `node` matter: its pods may have to be marked not
/// ready or evicted.
fn acts_on_pods(node: &Node) -> bool {
    ready_status(node) == Some(condition_status::UNKNOWN)
        || node
            .spec
            .taints
            .iter()
            .any(|t| t.effect == taint_effect::NO_EXECUTE)
}

fn ready_status(node: &Node) -> Option<&str> {
    node.status
        .condition(node_condition::READY)
        .map(|c| c.status.as_str())
}

fn is_health_taint(key: &str) -> bool {
    key == node_taints::UNREACHABLE || key == node_taints::NOT_READY
}

/// How long a node may stay silent: the controller's grace period, or its
/// Lease's duration when longer (the gateway sets that from the device's
/// heartbeat interval, minutes on metered links, where kubelet's 40 s
/// would mark every such device unknown between two heartbeats).
fn grace_period(grace: Duration, lease: Option<&Lease>) -> Duration {
    let leased = lease
        .and_then(|l| l.spec.lease_duration_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    grace.max(leased)
}

/// When the device was last heard of: the newest of its Lease's renewal and
/// its Ready condition's heartbeat, else the node's creation.
fn last_heard(node: &Node, lease: Option<&Lease>) -> Option<SystemTime> {
    let renewed = lease
        .and_then(|l| l.spec.renew_time.as_ref())
        .and_then(|t| parse_time(&t.0));
    let heartbeat = node
        .status
        .condition(node_condition::READY)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .and_then(|t| parse_time(&t.0));
    renewed.max(heartbeat).or_else(|| {
        node.metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| parse_time(&t.0))
    })
}

/// `node` with its reported conditions `Unknown`, or `None` when they are already.
pub(crate) fn mark_unknown(node: &Node, now: SystemTime) -> Option<Node> {
    let mut updated = node.clone();
    let stamp = format_time(now);
    for type_ in REPORTED_CONDITIONS {
        let conditions = &mut updated.status.conditions;
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => conditions.push(NodeCondition {
                type_: type_.to_owned(),
                status: condition_status::UNKNOWN.to_owned(),
                last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                last_transition_time: Some(stamp.clone()),
                reason: "NodeStatusNeverUpdated".into(),
                message: "Kubelet never posted node status.".into(),
            }),
            Some(c) if c.status != condition_status::UNKNOWN => {
                c.status = condition_status::UNKNOWN.to_owned();
                c.reason = "NodeStatusUnknown".into();
                c.message = "Kubelet stopped posting node status.".into();
                c.last_transition_time = Some(stamp.clone());
            }
            Some(_) => {}
        }
    }
    (updated != *node).then_some(updated)
}

/// The (key, effect) of every taint the node's conditions call for.
fn wanted_taints(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut wanted = Vec::new();
    for condition in &node.status.conditions {
        for (type_, status, key) in CONDITION_TAINTS {
            if condition.type_ == type_ && condition.status == status {
                wanted.push((key, taint_effect::NO_SCHEDULE));
            }
        }
    }
    if node.spec.unschedulable {
        wanted.push((node_taints::UNSCHEDULABLE, taint_effect::NO_SCHEDULE));
    }
    match ready_status(node) {
        Some(condition_status::FALSE) => {
            wanted.push((node_taints::NOT_READY, taint_effect::NO_EXECUTE));
        }
        Some(condition_status::UNKNOWN) => {
            wanted.push((node_taints::UNREACHABLE, taint_effect::NO_EXECUTE));
        }
        _ => {}
    }
    wanted
}

/// Whether this controller owns `taint`: the `NoSchedule` taints of
/// conditions and cordoning, and the `NoExecute` health taints once the
/// node has reported a Ready condition.
fn is_managed(taint: &Taint, reports_ready: bool) -> bool {
    match taint.effect.as_str() {
        taint_effect::NO_SCHEDULE => {
            taint.key == node_taints::UNSCHEDULABLE
                || CONDITION_TAINTS.iter().any(|(_, _, key)| *key == taint.key)
        }
        taint_effect::NO_EXECUTE => reports_ready && is_health_taint(&taint.key),
        _ => false,
    }
}

/// `node` with the taints its conditions call for (kept taints keep their
/// `timeAdded`; added ones and `NoExecute` ones without it get `now`), or
/// `None` when it has them already.
fn reconcile_taints(node: &Node, now: SystemTime) -> Option<Node> {
    let wanted = wanted_taints(node);
    let reports_ready = ready_status(node).is_some();
    let stamp = format_time(now);
    let mut taints: Vec<Taint> = node
        .spec
        .taints
        .iter()
        .filter(|t| {
            !is_managed(t, reports_ready) || wanted.contains(&(t.key.as_str(), t.effect.as_str()))
        })
        .cloned()
        .collect();
    for taint in &mut taints {
        if taint.effect == taint_effect::NO_EXECUTE && taint.time_added.is_none() {
            taint.time_added = Some(stamp.clone());
        }
    }
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == effect) {
            taints.push(Taint {
                key: key.to_owned(),
                value: String::new(),
                effect: effect.to_owned(),
                time_added: Some(stamp.clone()),
            });
        }
    }
    (taints != node.spec.taints).then(|| {
        let mut updated = node.clone();
        updated.spec.taints = taints;
        updated
    })
}

/// When `pod` must leave a node with the `NoExecute` `taints`: `now` if one
/// is not tolerated, the earliest `timeAdded + tolerationSeconds` of the
/// tolerations used (the first that tolerates each taint, as
/// `GetMatchingTolerations` picks), or `None` when it may stay forever.
fn eviction_time(pod: &Pod, taints: &[&Taint], now: SystemTime) -> Option<SystemTime> {
    let mut deadline: Option<SystemTime> = None;
    for taint in taints {
        let Some(toleration) = pod.spec.tolerations.iter().find(|t| t.tolerates(taint)) else {
            return Some(now);
        };
        if let Some(seconds) = toleration.toleration_seconds {
            let added = taint
                .time_added
                .as_ref()
                .and_then(|t| parse_time(&t.0))
                .unwrap_or(now);
            let at = added + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
            deadline = Some(deadline.map_or(at, |d| d.min(at)));
        }
    }
    deadline
}

/// Sets the pod condition `type_` as `UpdatePodCondition` does; answers
/// whether anything changed.
fn set_pod_condition(pod: &mut Pod, mut condition: PodCondition) -> bool {
    let conditions = &mut pod.status.conditions;
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        None => {
            conditions.push(condition);
            true
        }
        Some(old) => {
            if old.status == condition.status {
                condition.last_transition_time = old.last_transition_time.clone();
            }
            let changed = *old != condition;
            *old = condition;
            changed
        }
    }
}

/// The commands for the pods on `node` (marking them not ready, evicting
/// them) and when to look again for a toleration that runs out.
fn pod_commands(node: &Node, cache: &Cache, now: SystemTime) -> (Vec<Command>, Option<Duration>) {
    let unknown = ready_status(node) == Some(condition_status::UNKNOWN);
    let no_execute: Vec<&Taint> = node
        .spec
        .taints
        .iter()
        .filter(|t| t.effect == taint_effect::NO_EXECUTE)
        .collect();
    let mut commands = Vec::new();
    let mut next: Option<Duration> = None;
    if !unknown && no_execute.is_empty() {
        return (commands, next);
    }
    let stamp = format_time(now);
    for pod in cache.pods_on_node(&node.metadata.name) {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let evict_at = if no_execute.is_empty() {
            None
        } else {
            eviction_time(pod, &no_execute, now)
        };
        let evict = evict_at.is_some_and(|at| at <= now);
        if let Some(wait) = evict_at.and_then(|at| at.duration_since(now).ok())
            && !wait.is_zero()
        {
            next = Some(next.map_or(wait, |n| n.min(wait)));
        }
        let mut updated = pod.clone();
        let mut marked_not_ready = false;
        if unknown
            && let Some(ready) = pod.status.condition(pod_condition::READY)
            && ready.status != condition_status::FALSE
        {
            marked_not_ready = set_pod_condition(
                &mut updated,
                PodCondition {
                    status: condition_status::FALSE.to_owned(),
                    last_transition_time: Some(stamp.clone()),
                    ..ready.clone()
                },
            );
        }
        if evict {
            set_pod_condition(
                &mut updated,
                PodCondition {
                    type_: pod_condition::DISRUPTION_TARGET.to_owned(),
                    status: condition_status::TRUE.to_owned(),
                    last_transition_time: Some(stamp.clone()),
                    reason: "DeletionByTaintManager".into(),
                    message: "Taint manager: deleting due to NoExecute taint".into(),
                    ..PodCondition::default()
                },
            );
        }
        let status_changed = updated != *pod;
        if !status_changed && !evict {
            continue;
        }
        let object = Object::Pod(updated);
        let regarding = reference_to(&object);
        let key = key_of(&object);
        if status_changed {
            commands.push(Command::UpdateStatus(Box::new(object)));
        }
        if marked_not_ready {
            commands.push(Command::Event {
                regarding: regarding.clone(),
                type_: EventType::Warning,
                reason: "NodeNotReady".into(),
                message: "Node is not ready".into(),
            });
        }
        if evict {
            commands.push(Command::Event {
                regarding,
                type_: EventType::Normal,
                reason: "TaintManagerEviction".into(),
                message: format!(
                    "Marking for deletion Pod {}/{}",
                    pod.metadata.namespace, pod.metadata.name
                ),
            });
            commands.push(Command::Delete {
                key,
                uid: Some(pod.metadata.uid.clone()),
                propagation: Propagation::Background,
            });
        }
    }
    (commands, next)
}

/// `RecordNodeStatusChange`: "Node gw-1 status is now: NodeNotReady".
fn node_event(node: &Object, status: &str) -> Command {
    Command::Event {
        regarding: reference_to(node),
        type_: EventType::Normal,
        reason: status.to_owned(),
        message: format!("Node {} status is now: {status}", node.metadata().name),
    }
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{
        LeaseSpec, NodeSpec, NodeStatus, ObjectMeta, PodSpec, PodStatus, Time,
    };

    use super::*;
    use crate::api::time::format_micro_time;

    const EPOCH: u64 = 1_795_000_000;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH + seconds)
    }

    fn time(seconds: u64) -> Option<Time> {
        Some(format_time(at(seconds)))
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    /// A node whose agent reported `ready` (and, unless `Unknown`, no
    /// pressure) with its last heartbeat at `heartbeat`.
    fn node(ready: &str, heartbeat: u64) -> Node {
        let pressure = if ready == condition_status::UNKNOWN {
            condition_status::UNKNOWN
        } else {
            condition_status::FALSE
        };
        let condition = |type_: &str, status: &str| NodeCondition {
            type_: type_.into(),
            status: status.into(),
            last_heartbeat_time: time(heartbeat),
            last_transition_time: time(0),
            reason: format!("Kubelet{type_}"),
            message: String::new(),
        };
        Node {
            metadata: ObjectMeta {
                name: "gw-1".into(),
                uid: "node-uid".into(),
                resource_version: "5".into(),
                creation_timestamp: time(0),
                ..ObjectMeta::default()
            },
            status: NodeStatus {
                conditions: vec![
                    condition(node_condition::READY, ready),
                    condition(node_condition::MEMORY_PRESSURE, pressure),
                    condition(node_condition::DISK_PRESSURE, pressure),
                    condition(node_condition::PID_PRESSURE, pressure),
                ],
                ..NodeStatus::default()
            },
            ..Node::default()
        }
    }

    fn with_taints(mut node: Node, taints: Vec<Taint>) -> Node {
        node.spec.taints = taints;
        node
    }

    fn lease(renewed: u64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: "gw-1".into(),
                namespace: NODE_LEASE_NAMESPACE.into(),
                ..ObjectMeta::default()
            },
            spec: LeaseSpec {
                holder_identity: Some("gw-1".into()),
                lease_duration_seconds: Some(40),
                renew_time: Some(format_micro_time(at(renewed))),
                ..LeaseSpec::default()
            },
            ..Lease::default()
        }
    }

    fn taint(key: &str, effect: &str, added: Option<u64>) -> Taint {
        Taint {
            key: key.into(),
            value: String::new(),
            effect: effect.into(),
            time_added: added.and_then(time),
        }
    }

    fn unreachable_taints(added: u64) -> Vec<Taint> {
        vec![
            taint(
                node_taints::UNREACHABLE,
                taint_effect::NO_SCHEDULE,
                Some(added),
            ),
            taint(
                node_taints::UNREACHABLE,
                taint_effect::NO_EXECUTE,
                Some(added),
            ),
        ]
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: key.into(),
            operator: toleration_operator::EXISTS.into(),
            effect: taint_effect::NO_EXECUTE.into(),
            toleration_seconds: seconds,
            ..Toleration::default()
        }
    }

    fn pod(name: &str, tolerations: Vec<Toleration>, ready: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("uid-{name}"),
                resource_version: "9".into(),
                ..ObjectMeta::default()
            },
            spec: PodSpec {
                node_name: "gw-1".into(),
                tolerations,
                ..PodSpec::default()
            },
            status: PodStatus {
                phase: "Running".into(),
                conditions: vec![PodCondition {
                    type_: pod_condition::READY.into(),
                    status: ready.into(),
                    last_transition_time: time(0),
                    ..PodCondition::default()
                }],
                ..PodStatus::default()
            },
            ..Pod::default()
        }
    }

    fn cache_of(objects: impl IntoIterator<Item = Object>) -> Cache {
        let mut cache = Cache::new();
        for object in objects {
            cache.apply(object);
        }
        cache
    }

    fn node_key() -> ObjectKey {
        ObjectKey::new("Node", "", "gw-1")
    }

    fn reconcile(objects: Vec<Object>, now: u64) -> Action {
        NodeLifecycleController::default().reconcile(&node_key(), &cache_of(objects), at(now))
    }

    fn event(object: Object, type_: EventType, reason: &str, message: &str) -> Command {
        Command::Event {
            regarding: reference_to(&object),
            type_,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// `node` as the controller writes it when the device went silent at `now`.
    fn gone_unknown(mut node: Node, now: u64) -> Node {
        for c in &mut node.status.conditions {
            c.status = condition_status::UNKNOWN.into();
            c.reason = "NodeStatusUnknown".into();
            c.message = "Kubelet stopped posting node status.".into();
            c.last_transition_time = time(now);
        }
        node
    }

    #[test]
    fn a_node_goes_unknown_once_its_grace_period_has_passed() {
        // (case, lease renewed at, Ready heartbeat at, now, requeue when still alive)
        let cases = [
            ("fresh lease", Some(100), 10, 139, Some(1)),
            ("lease expired", Some(100), 10, 140, None),
            ("no lease, fresh heartbeat", None, 100, 130, Some(10)),
            ("no lease, old heartbeat", None, 100, 141, None),
            (
                "heartbeat newer than the lease",
                Some(100),
                130,
                150,
                Some(20),
            ),
        ];
        for (case, renewed, heartbeat, now, alive) in cases {
            let healthy = node(condition_status::TRUE, heartbeat);
            let mut objects = vec![Object::Node(healthy.clone())];
            objects.extend(renewed.map(|r| Object::Lease(lease(r))));
            let expected = match alive {
                Some(after) => Action::await_change().requeue(secs(after)),
                None => Action::with(vec![
                    Command::UpdateStatus(Box::new(Object::Node(gone_unknown(
                        healthy.clone(),
                        now,
                    )))),
                    event(
                        Object::Node(healthy),
                        EventType::Normal,
                        "NodeNotReady",
                        "Node gw-1 status is now: NodeNotReady",
                    ),
                ]),
            };
            assert_eq!(reconcile(objects, now), expected, "{case}");
        }
    }

    #[test]
    fn a_lease_longer_than_the_grace_period_keeps_a_slow_heartbeating_device_alive() {
        // A device heartbeating every 5 minutes: its Lease lasts 15.
        let mut long = lease(100);
        long.spec.lease_duration_seconds = Some(900);
        let healthy = node(condition_status::TRUE, 10);
        let objects = vec![Object::Node(healthy.clone()), Object::Lease(long)];
        assert_eq!(
            reconcile(objects.clone(), 140),
            Action::await_change().requeue(secs(860))
        );
        let gone = reconcile(objects, 1000);
        assert!(
            matches!(&gone.commands[0], Command::UpdateStatus(_)),
            "{gone:?}"
        );
    }

    #[test]
    fn a_node_that_never_reported_goes_unknown_a_grace_period_after_its_creation() {
        let mut silent = node(condition_status::TRUE, 0);
        silent.status.conditions.clear();
        assert_eq!(
            reconcile(vec![Object::Node(silent.clone())], 39),
            Action::await_change().requeue(secs(1))
        );
        let mut expected = silent.clone();
        for type_ in REPORTED_CONDITIONS {
            expected.status.conditions.push(NodeCondition {
                type_: type_.into(),
                status: condition_status::UNKNOWN.into(),
                last_heartbeat_time: time(0),
                last_transition_time: time(40),
                reason: "NodeStatusNeverUpdated".into(),
                message: "Kubelet never posted node status.".into(),
            });
        }
        // No NodeNotReady: it was never ready.
        assert_eq!(
            reconcile(vec![Object::Node(silent)], 40),
            Action::with(vec![Command::UpdateStatus(Box::new(Object::Node(
                expected
            )))])
        );
    }

    #[test]
    fn taints_follow_the_conditions_with_the_time_they_were_added() {
        let dedicated = taint("dedicated", taint_effect::NO_SCHEDULE, None);
        let maintenance = taint("maintenance", taint_effect::NO_EXECUTE, None);
        let mut cordoned = node(condition_status::TRUE, 200);
        cordoned.spec.unschedulable = true;
        // (case, node, taints written then, whether it recovered)
        let cases = [
            (
                "silent node: unreachable",
                node(condition_status::UNKNOWN, 10),
                Some(unreachable_taints(200)),
                false,
            ),
            (
                "not ready after unreachable: the taints are swapped",
                with_taints(node(condition_status::FALSE, 200), unreachable_taints(100)),
                Some(vec![
                    taint(node_taints::NOT_READY, taint_effect::NO_SCHEDULE, Some(200)),
                    taint(node_taints::NOT_READY, taint_effect::NO_EXECUTE, Some(200)),
                ]),
                false,
            ),
            (
                "ready again: the health taints go, the user's stay",
                with_taints(
                    node(condition_status::TRUE, 200),
                    [vec![dedicated.clone()], unreachable_taints(100)].concat(),
                ),
                Some(vec![dedicated.clone()]),
                true,
            ),
            (
                "already tainted as it should be",
                with_taints(node(condition_status::UNKNOWN, 10), unreachable_taints(100)),
                None,
                false,
            ),
            (
                "cordoned",
                cordoned,
                Some(vec![taint(
                    node_taints::UNSCHEDULABLE,
                    taint_effect::NO_SCHEDULE,
                    Some(200),
                )]),
                false,
            ),
            (
                "a NoExecute taint without timeAdded gets one",
                with_taints(node(condition_status::TRUE, 200), vec![maintenance]),
                Some(vec![taint(
                    "maintenance",
                    taint_effect::NO_EXECUTE,
                    Some(200),
                )]),
                false,
            ),
        ];
        for (case, before, taints, recovered) in cases {
            let mut commands = Vec::new();
            if let Some(taints) = taints {
                let after = with_taints(before.clone(), taints);
                commands.push(Command::Update(Box::new(Object::Node(after))));
            }
            if recovered {
                commands.push(event(
                    Object::Node(before.clone()),
                    EventType::Normal,
                    "NodeReady",
                    "Node gw-1 status is now: NodeReady",
                ));
            }
            let alive = before.is_ready() || ready_status(&before) == Some("False");
            let mut expected = Action::with(commands);
            if alive {
                expected = expected.requeue(secs(40));
            }
            assert_eq!(
                reconcile(vec![Object::Node(before)], 200),
                expected,
                "{case}"
            );
        }
    }

    /// The commands that evict `pod` at `now`.
    fn eviction(pod: &Pod, now: u64) -> Vec<Command> {
        let mut marked = pod.clone();
        marked.status.conditions.push(PodCondition {
            type_: pod_condition::DISRUPTION_TARGET.into(),
            status: condition_status::TRUE.into(),
            last_transition_time: time(now),
            reason: "DeletionByTaintManager".into(),
            message: "Taint manager: deleting due to NoExecute taint".into(),
            ..PodCondition::default()
        });
        vec![
            Command::UpdateStatus(Box::new(Object::Pod(marked.clone()))),
            event(
                Object::Pod(marked),
                EventType::Normal,
                "TaintManagerEviction",
                &format!("Marking for deletion Pod default/{}", pod.metadata.name),
            ),
            Command::Delete {
                key: ObjectKey::new("Pod", "default", &pod.metadata.name),
                uid: Some(pod.metadata.uid.clone()),
                propagation: Propagation::Background,
            },
        ]
    }

    #[test]
    fn pods_that_do_not_tolerate_the_taint_are_evicted_when_their_toleration_runs_out() {
        let defaulted = {
            let mut p = pod("p", Vec::new(), condition_status::FALSE);
            default_tolerations(&mut p);
            p.spec.tolerations
        };
        let wildcard = Toleration {
            operator: toleration_operator::EXISTS.into(),
            ..Toleration::default()
        };
        // (case, tolerations, now, evicted, requeue)
        let cases = [
            ("no toleration", Vec::new(), 200, true, None),
            (
                "tolerates another taint only",
                vec![toleration(node_taints::NOT_READY, None)],
                200,
                true,
                None,
            ),
            (
                "300 s not yet over",
                vec![toleration(node_taints::UNREACHABLE, Some(300))],
                200,
                false,
                Some(200),
            ),
            (
                "300 s over",
                vec![toleration(node_taints::UNREACHABLE, Some(300))],
                400,
                true,
                None,
            ),
            (
                "0 s",
                vec![toleration(node_taints::UNREACHABLE, Some(0))],
                200,
                true,
                None,
            ),
            (
                "the default tolerations: autonomous",
                defaulted,
                9_999,
                false,
                None,
            ),
            ("tolerates everything", vec![wildcard], 200, false, None),
        ];
        let tainted = with_taints(node(condition_status::UNKNOWN, 10), unreachable_taints(100));
        for (case, tolerations, now, evicted, requeue) in cases {
            let p = pod("p", tolerations, condition_status::FALSE);
            let mut gone = p.clone();
            gone.metadata.deletion_timestamp = time(now);
            gone.metadata.name = "already-going".into();
            let objects = vec![
                Object::Node(tainted.clone()),
                Object::Pod(p.clone()),
                Object::Pod(gone),
            ];
            let mut expected = Action::with(if evicted {
                eviction(&p, now)
            } else {
                Vec::new()
            });
            if let Some(after) = requeue {
                expected = expected.requeue(secs(after));
            }
            assert_eq!(reconcile(objects, now), expected, "{case}");
        }
    }

    #[test]
    fn pods_on_a_silent_node_are_marked_not_ready_once() {
        let tainted = with_taints(node(condition_status::UNKNOWN, 10), unreachable_taints(100));
        let mut tolerating = pod("kept", Vec::new(), condition_status::TRUE);
        default_tolerations(&mut tolerating);
        let intolerant = pod("evicted", Vec::new(), condition_status::TRUE);
        let not_ready = |p: &Pod| {
            let mut p = p.clone();
            p.status.conditions[0].status = condition_status::FALSE.into();
            p.status.conditions[0].last_transition_time = time(200);
            p
        };
        let marked = not_ready(&tolerating);
        let node_not_ready = |p: &Pod| {
            event(
                Object::Pod(p.clone()),
                EventType::Warning,
                "NodeNotReady",
                "Node is not ready",
            )
        };
        let mut evicted = eviction(&not_ready(&intolerant), 200);
        evicted.insert(1, node_not_ready(&intolerant));
        let objects = vec![
            Object::Node(tainted.clone()),
            Object::Pod(tolerating.clone()),
            Object::Pod(intolerant),
        ];
        let mut expected = evicted;
        expected.extend([
            Command::UpdateStatus(Box::new(Object::Pod(marked.clone()))),
            node_not_ready(&marked),
        ]);
        assert_eq!(reconcile(objects, 200), Action::with(expected));
        // Once marked, nothing more to do.
        let objects = vec![Object::Node(tainted), Object::Pod(marked)];
        assert_eq!(reconcile(objects, 201), Action::await_change());
    }

    #[test]
    fn leases_and_pods_on_nodes_that_act_on_pods_queue_their_node() {
        let healthy = node(condition_status::TRUE, 100);
        let tainted = Node {
            metadata: ObjectMeta {
                name: "gw-2".into(),
                ..ObjectMeta::default()
            },
            spec: NodeSpec {
                taints: unreachable_taints(100),
                ..NodeSpec::default()
            },
            ..node(condition_status::UNKNOWN, 10)
        };
        let cache = cache_of([Object::Node(healthy.clone()), Object::Node(tainted)]);
        let mut elsewhere = lease(100);
        elsewhere.metadata.namespace = "default".into();
        let mut on_tainted = pod("b", Vec::new(), condition_status::TRUE);
        on_tainted.spec.node_name = "gw-2".into();
        let mut unbound = pod("c", Vec::new(), condition_status::TRUE);
        unbound.spec.node_name.clear();
        let cases = [
            (Object::Node(healthy), vec![node_key()]),
            (Object::Lease(lease(100)), vec![node_key()]),
            (Object::Lease(elsewhere), Vec::new()),
            (
                Object::Pod(pod("a", Vec::new(), condition_status::TRUE)),
                Vec::new(),
            ),
            (
                Object::Pod(on_tainted),
                vec![ObjectKey::new("Node", "", "gw-2")],
            ),
            (Object::Pod(unbound), Vec::new()),
        ];
        let controller = NodeLifecycleController::default();
        for (object, keys) in cases {
            assert_eq!(controller.keys_for(&object, &cache), keys, "{object:?}");
        }
    }

    #[test]
    fn default_tolerations_tolerate_offline_devices_forever_unless_the_pod_says_otherwise() {
        let forever = |key: &str| toleration(key, None);
        let own = toleration(node_taints::UNREACHABLE, Some(300));
        let any_effect = Toleration {
            key: node_taints::NOT_READY.into(),
            operator: toleration_operator::EXISTS.into(),
            ..Toleration::default()
        };
        let no_schedule = Toleration {
            effect: taint_effect::NO_SCHEDULE.into(),
            ..forever(node_taints::UNREACHABLE)
        };
        let cases = [
            (
                vec![],
                vec![
                    forever(node_taints::NOT_READY),
                    forever(node_taints::UNREACHABLE),
                ],
            ),
            (
                vec![own.clone()],
                vec![own.clone(), forever(node_taints::NOT_READY)],
            ),
            (
                vec![any_effect.clone()],
                vec![any_effect, forever(node_taints::UNREACHABLE)],
            ),
            (
                vec![no_schedule.clone()],
                vec![
                    no_schedule,
                    forever(node_taints::NOT_READY),
                    forever(node_taints::UNREACHABLE),
                ],
            ),
        ];
        for (given, expected) in cases {
            let mut p = pod("p", given.clone(), condition_status::TRUE);
            default_tolerations(&mut p);
            assert_eq!(p.spec.tolerations, expected, "{given:?}");
        }
    }

    /// Runs the controller against `cache` at `now`, writing what it asks
    /// into the cache, until it has nothing more to do; answers the events.
    fn settle(cache: &mut Cache, now: u64) -> Vec<String> {
        let controller = NodeLifecycleController::default();
        let mut reasons = Vec::new();
        for _ in 0..10 {
            let action = controller.reconcile(&node_key(), cache, at(now));
            if action.commands.is_empty() {
                return reasons;
            }
            for command in action.commands {
                match command {
                    Command::Update(object) | Command::UpdateStatus(object) => cache.apply(*object),
                    Command::Delete { key, .. } => {
                        cache.remove(&key);
                    }
                    Command::Event { reason, .. } => reasons.push(reason),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        panic!("the node lifecycle controller does not settle");
    }

    #[test]
    fn an_offline_device_keeps_its_defaulted_pods_and_loses_its_taints_when_it_returns() {
        let mut kept = pod("kept", Vec::new(), condition_status::TRUE);
        default_tolerations(&mut kept);
        let mut cache = cache_of([
            Object::Node(node(condition_status::TRUE, 0)),
            Object::Lease(lease(100)),
            Object::Pod(kept),
            Object::Pod(pod("intolerant", Vec::new(), condition_status::TRUE)),
        ]);
        assert_eq!(
            settle(&mut cache, 150),
            [
                "NodeNotReady",
                "NodeNotReady",
                "TaintManagerEviction",
                "NodeNotReady"
            ]
        );
        let Some(Object::Node(offline)) = cache.get(&node_key()).cloned() else {
            panic!()
        };
        assert_eq!(offline.spec.taints, unreachable_taints(150));
        let pods: Vec<_> = cache.pods().map(|p| p.metadata.name.clone()).collect();
        assert_eq!(pods, ["kept"]);
        // The device returns: its lease is renewed and it reports Ready.
        cache.apply(Object::Lease(lease(300)));
        cache.apply(Object::Node(with_taints(
            node(condition_status::TRUE, 300),
            offline.spec.taints,
        )));
        assert_eq!(settle(&mut cache, 301), ["NodeReady"]);
        let Some(Object::Node(back)) = cache.get(&node_key()) else {
            panic!()
        };
        assert!(back.spec.taints.is_empty());
    }
}
