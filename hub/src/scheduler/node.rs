//! What the scheduler keeps about one node: the parts of the Node object the
//! filters and scores read, precomputed when the node changes, and the sum
//! of what the pods bound (or assumed) to it use.

use std::collections::BTreeMap;

use flotilla_shared::model::{
    Node, Taint, condition_status, node_condition, node_labels, node_taints, taint_effect,
};

use super::intern::FxMap;
use super::pod::HostPort;
use super::resources::{Allocatable, PodUsage, Resources};

/// One node, or a placeholder for pods bound to a node the scheduler does
/// not (or no longer) know (`present` false), as kube's cache keeps them.
#[derive(Debug, Default)]
pub(super) struct NodeState {
    pub name: String,
    pub present: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    pub labels: BTreeMap<String, String>,
    /// `NoSchedule` and `NoExecute` taints, the readiness taint first.
    pub filter_taints: Vec<Taint>,
    /// `PreferNoSchedule` taints.
    pub prefer_taints: Vec<Taint>,
    /// Bit index of the node's architecture (see `Scheduler::arch_bit`).
    pub arch: Option<u32>,
    /// Interned value of the zone label.
    pub zone: Option<u32>,
    pub allocatable: Allocatable,
    /// Sum of the effective requests of the node's pods.
    pub requested: Resources,
    /// How many pods are bound or assumed here.
    pub pods: i64,
    pub nonzero_cpu_m: i64,
    pub nonzero_memory: i64,
    /// Interned image names present on the node with their sizes, sorted by id.
    pub images: Vec<(u32, i64)>,
    /// Host ports the node's pods hold.
    pub host_ports: Vec<HostPort>,
    /// Pods per workload (see `pod::workload_key`), not counting pods being deleted.
    pub workloads: FxMap<u32, u32>,
    /// Pod records that point at this node; a placeholder goes when it reaches 0.
    pub records: usize,
}

impl NodeState {
    /// Adds (`sign` 1) or removes (`sign` -1) a pod's usage.
    pub(super) fn account(&mut self, usage: &PodUsage, ports: &[HostPort], sign: i64) {
        self.requested.apply(&usage.requests, sign);
        self.pods += sign;
        self.nonzero_cpu_m += sign * usage.nonzero_cpu_m;
        self.nonzero_memory += sign * usage.nonzero_memory;
        if sign > 0 {
            self.host_ports.extend(ports.iter().cloned());
        } else {
            for port in ports {
                if let Some(i) = self.host_ports.iter().position(|p| p == port) {
                    self.host_ports.swap_remove(i);
                }
            }
        }
    }

    /// The image of interned id `image`, and its size, if the node has it.
    pub(super) fn image_size(&self, image: u32) -> Option<i64> {
        self.images
            .binary_search_by_key(&image, |(id, _)| *id)
            .ok()
            .map(|i| self.images[i].1)
    }
}

/// The taint the node lifecycle controller puts on a node whose `Ready`
/// condition is not `True` (TaintNodesByCondition): `not-ready` when it is
/// `False` or missing, `unreachable` when it is `Unknown`. The scheduler
/// applies it itself so a node that stops being ready is avoided at once,
/// and a pod that tolerates the taint may still go there, as in Kubernetes.
pub(super) fn readiness_taint(node: &Node) -> Option<Taint> {
    let key = match node.status.condition(node_condition::READY) {
        Some(c) if c.status == condition_status::TRUE => return None,
        Some(c) if c.status == condition_status::UNKNOWN => node_taints::UNREACHABLE,
        _ => node_taints::NOT_READY,
    };
    Some(Taint {
        key: key.to_owned(),
        effect: taint_effect::NO_SCHEDULE.to_owned(),
        ..Taint::default()
    })
}

/// The node's taints split as the TaintToleration plugin reads them: those
/// that filter (`NoSchedule`, `NoExecute`; the readiness taint first unless
/// the node already has it) and those that only score (`PreferNoSchedule`).
pub(super) fn taints(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let mut filter = Vec::new();
    if let Some(ready) = readiness_taint(node) {
        let present = node
            .spec
            .taints
            .iter()
            .any(|t| t.key == ready.key && t.effect == ready.effect);
        if !present {
            filter.push(ready);
        }
    }
    let mut prefer = Vec::new();
    for taint in &node.spec.taints {
        match taint.effect.as_str() {
            taint_effect::NO_SCHEDULE | taint_effect::NO_EXECUTE => filter.push(taint.clone()),
            taint_effect::PREFER_NO_SCHEDULE => prefer.push(taint.clone()),
            _ => {}
        }
    }
    (filter, prefer)
}

/// The node's architecture: its `kubernetes.io/arch` label, else what it
/// reports in `status.nodeInfo.architecture`.
pub(super) fn arch(node: &Node) -> Option<&str> {
    node.metadata
        .labels
        .get(node_labels::ARCH)
        .map(String::as_str)
        .or_else(|| Some(node.status.node_info.architecture.as_str()).filter(|a| !a.is_empty()))
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::NodeCondition;

    use super::*;

    fn node_with(ready: Option<&str>, taints: Vec<Taint>) -> Node {
        let mut node = Node::default();
        if let Some(status) = ready {
            node.status.conditions.push(NodeCondition {
                type_: node_condition::READY.to_owned(),
                status: status.to_owned(),
                ..NodeCondition::default()
            });
        }
        node.spec.taints = taints;
        node
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.to_owned(),
            effect: effect.to_owned(),
            ..Taint::default()
        }
    }

    #[test]
    fn readiness_becomes_the_lifecycle_controllers_taint() {
        let cases = [
            ("ready", Some("True"), None),
            ("not ready", Some("False"), Some(node_taints::NOT_READY)),
            ("unknown", Some("Unknown"), Some(node_taints::UNREACHABLE)),
            ("never reported", None, Some(node_taints::NOT_READY)),
        ];
        for (name, status, key) in cases {
            let got = readiness_taint(&node_with(status, vec![]));
            assert_eq!(got.map(|t| t.key), key.map(str::to_owned), "{name}");
        }
    }

    #[test]
    fn taints_are_split_by_effect_with_readiness_first_and_not_repeated() {
        let node = node_with(
            Some("Unknown"),
            vec![
                taint("battery", "PreferNoSchedule"),
                taint("dedicated", "NoSchedule"),
                taint(node_taints::UNREACHABLE, "NoExecute"),
            ],
        );
        let (filter, prefer) = taints(&node);
        let keys: Vec<_> = filter
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                (node_taints::UNREACHABLE, "NoSchedule"),
                ("dedicated", "NoSchedule"),
                (node_taints::UNREACHABLE, "NoExecute"),
            ]
        );
        assert_eq!(prefer, vec![taint("battery", "PreferNoSchedule")]);

        let node = node_with(
            Some("False"),
            vec![taint(node_taints::NOT_READY, "NoSchedule")],
        );
        assert_eq!(
            taints(&node).0,
            vec![taint(node_taints::NOT_READY, "NoSchedule")]
        );
    }

    #[test]
    fn arch_comes_from_the_label_then_the_node_info() {
        let mut node = Node::default();
        assert_eq!(arch(&node), None);
        node.status.node_info.architecture = "arm".to_owned();
        assert_eq!(arch(&node), Some("arm"));
        node.metadata
            .labels
            .insert(node_labels::ARCH.to_owned(), "arm64".to_owned());
        assert_eq!(arch(&node), Some("arm64"));
    }
}
