//! Which nodes a DaemonSet's pod belongs on (`NodeShouldRunDaemonPod` and
//! `predicates` in pkg/controller/daemon/daemon_controller.go,
//! `AddOrUpdateDaemonPodTolerations` in pkg/controller/daemon/util).
//!
//! Flotilla differs from Kubernetes in two ways, both because a device
//! that is offline is still part of the fleet:
//!
//! - the `NoSchedule` taints the node lifecycle controller puts on a node
//!   that is not ready or unreachable do not keep a daemon pod off it, so
//!   an offline device counts in `desiredNumberScheduled` and gets its pod
//!   (it runs it when it reconnects). Kubernetes would leave such a node
//!   to the scheduler, which does not place pods there;
//! - the controller creates its pods bound to their node (as Kubernetes
//!   did before 1.12), so it also checks that the pod fits the node's
//!   allocatable resources, and says `FailedPlacement` when it does not.

use std::collections::BTreeMap;

use flotilla_shared::model::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, ResourceList, Taint, Toleration,
    node_taints, taint_effect, toleration_operator,
};
use flotilla_shared::quantity::Amount;
use flotilla_shared::selector::{Operator, Requirement};

/// Whether a DaemonSet's pod should be created on a node, and whether a
/// pod already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub should_run: bool,
    pub should_continue_running: bool,
}

/// Adds the tolerations Kubernetes gives every daemon pod, so that node
/// problems neither evict nor keep out the pod: `not-ready` and
/// `unreachable` (`NoExecute`), `disk-pressure`, `memory-pressure`,
/// `pid-pressure`, `unschedulable` (`NoSchedule`), and
/// `network-unavailable` (`NoSchedule`) for host-network pods.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        (node_taints::NOT_READY, taint_effect::NO_EXECUTE),
        (node_taints::UNREACHABLE, taint_effect::NO_EXECUTE),
        (node_taints::DISK_PRESSURE, taint_effect::NO_SCHEDULE),
        (node_taints::MEMORY_PRESSURE, taint_effect::NO_SCHEDULE),
        (node_taints::PID_PRESSURE, taint_effect::NO_SCHEDULE),
        (node_taints::UNSCHEDULABLE, taint_effect::NO_SCHEDULE),
    ];
    if spec.host_network {
        wanted.push((node_taints::NETWORK_UNAVAILABLE, taint_effect::NO_SCHEDULE));
    }
    for (key, effect) in wanted {
        add_or_update_toleration(
            spec,
            Toleration {
                key: key.to_owned(),
                operator: toleration_operator::EXISTS.to_owned(),
                effect: effect.to_owned(),
                ..Toleration::default()
            },
        );
    }
}

/// `AddOrUpdateTolerationInPodSpec`: replaces the toleration with the same
/// key, operator, value and effect, or appends it.
fn add_or_update_toleration(spec: &mut PodSpec, toleration: Toleration) {
    let same = |t: &Toleration| {
        t.key == toleration.key
            && t.operator == toleration.operator
            && t.value == toleration.value
            && t.effect == toleration.effect
    };
    match spec.tolerations.iter_mut().find(|t| same(t)) {
        Some(existing) => *existing = toleration,
        None => spec.tolerations.push(toleration),
    }
}

/// `NodeShouldRunDaemonPod` for `pod` (the DaemonSet's pod as it would be
/// created, daemon tolerations included) on `node`.
pub fn node_should_run(pod: &Pod, node: &Node) -> Verdict {
    const NEITHER: Verdict = Verdict {
        should_run: false,
        should_continue_running: false,
    };
    let spec = &pod.spec;
    if !spec.node_name.is_empty() && spec.node_name != node.metadata.name {
        return NEITHER;
    }
    if !matches_node_selector(spec, node) {
        return NEITHER;
    }
    let untolerated = |effects: &[&str]| {
        node.spec.taints.iter().any(|taint| {
            effects.contains(&taint.effect.as_str())
                && !is_offline_no_schedule(taint)
                && !spec.tolerations.iter().any(|t| t.tolerates(taint))
        })
    };
    if untolerated(&[taint_effect::NO_SCHEDULE, taint_effect::NO_EXECUTE]) {
        return Verdict {
            should_run: false,
            should_continue_running: !untolerated(&[taint_effect::NO_EXECUTE]),
        };
    }
    Verdict {
        should_run: true,
        should_continue_running: true,
    }
}

/// The `NoSchedule` taints a node gets while it is offline.
fn is_offline_no_schedule(taint: &Taint) -> bool {
    taint.effect == taint_effect::NO_SCHEDULE
        && (taint.key == node_taints::NOT_READY || taint.key == node_taints::UNREACHABLE)
}

/// `spec.nodeSelector` and the required node affinity
/// (`nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`).
fn matches_node_selector(spec: &PodSpec, node: &Node) -> bool {
    let labels = &node.metadata.labels;
    if spec
        .node_selector
        .iter()
        .any(|(key, value)| labels.get(key) != Some(value))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(selector) => selector
            .node_selector_terms
            .iter()
            .any(|term| matches_term(term, node)),
    }
}

/// A term holds when all its expressions (on labels) and fields (only
/// `metadata.name`) hold; a term with neither matches nothing.
fn matches_term(term: &NodeSelectorTerm, node: &Node) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    let fields = BTreeMap::from([("metadata.name".to_owned(), node.metadata.name.clone())]);
    term.match_expressions
        .iter()
        .all(|r| matches_requirement(r, &node.metadata.labels))
        && term
            .match_fields
            .iter()
            .all(|r| r.key == "metadata.name" && matches_requirement(r, &fields))
}

fn matches_requirement(
    requirement: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let operator = match requirement.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::Gt,
        "Lt" => Operator::Lt,
        _ => return false,
    };
    Requirement::new(
        requirement.key.clone(),
        operator,
        requirement.values.clone(),
    )
    .is_ok_and(|r| r.matches(labels))
}

/// Why `pod` does not fit `node` next to the pods already bound there,
/// in the scheduler's words (`Insufficient cpu`, `Too many pods`), or
/// `None` when it fits. Only the resources the pod requests are checked.
pub fn misfit<'a>(pod: &Pod, node: &Node, others: impl Iterator<Item = &'a Pod>) -> Option<String> {
    let allocatable = &node.status.allocatable;
    let requested = pod_requests(&pod.spec);
    let others: Vec<&Pod> = others.filter(|p| !p.is_terminal()).collect();
    if let Some(max_pods) = allocatable.get("pods").and_then(|q| q.parse().ok())
        && Amount::from_units(others.len() as i64 + 1) > max_pods
    {
        return Some("Too many pods".to_owned());
    }
    for (resource, amount) in &requested {
        if amount.is_zero() {
            continue;
        }
        let used = Amount::checked_sum(
            others
                .iter()
                .filter_map(|p| pod_requests(&p.spec).get(resource).copied()),
        )
        .unwrap_or(Amount::MAX);
        let free = allocatable
            .get(resource)
            .and_then(|q| q.parse().ok())
            .and_then(|a: Amount| a.checked_sub(used))
            .unwrap_or(Amount::zero());
        if *amount > free {
            return Some(format!("Insufficient {resource}"));
        }
    }
    None
}

/// A pod's effective requests: the sum over its containers, or the
/// largest init container's request when that is more.
fn pod_requests(spec: &PodSpec) -> BTreeMap<String, Amount> {
    let mut total: BTreeMap<String, Amount> = BTreeMap::new();
    let parsed = |list: &ResourceList| -> Vec<(String, Amount)> {
        list.iter()
            .filter_map(|(name, q)| q.parse().ok().map(|a| (name.clone(), a)))
            .collect()
    };
    for container in &spec.containers {
        for (name, amount) in parsed(&container.resources.requests) {
            let sum = total.entry(name).or_default();
            *sum = sum.checked_add(amount).unwrap_or(Amount::MAX);
        }
    }
    for container in &spec.init_containers {
        for (name, amount) in parsed(&container.resources.requests) {
            let current = total.entry(name).or_default();
            *current = (*current).max(amount);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{
        Affinity, Container, NodeAffinity, NodeSelector, ResourceRequirements,
    };
    use flotilla_shared::quantity::Quantity;

    use super::*;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        let mut node = Node::default();
        node.metadata.name = name.into();
        node.metadata.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        node.spec.taints = taints
            .iter()
            .map(|(key, effect)| Taint {
                key: (*key).into(),
                effect: (*effect).into(),
                ..Taint::default()
            })
            .collect();
        node
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn pod_with(edit: impl FnOnce(&mut PodSpec)) -> Pod {
        let mut pod = Pod::default();
        edit(&mut pod.spec);
        add_daemon_tolerations(&mut pod.spec);
        pod
    }

    fn affinity(terms: Vec<NodeSelectorTerm>) -> Option<Affinity> {
        Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        })
    }

    const RUN: Verdict = Verdict {
        should_run: true,
        should_continue_running: true,
    };
    const STAY: Verdict = Verdict {
        should_run: false,
        should_continue_running: true,
    };
    const NEITHER: Verdict = Verdict {
        should_run: false,
        should_continue_running: false,
    };

    #[test]
    fn placement_follows_selectors_affinity_and_taints() {
        let arm = || node("n1", &[("kubernetes.io/arch", "arm64"), ("tier", "3")], &[]);
        let cases: Vec<(&str, Pod, Node, Verdict)> = vec![
            ("no constraints", pod_with(|_| {}), arm(), RUN),
            (
                "nodeSelector matches",
                pod_with(|s| {
                    s.node_selector
                        .insert("kubernetes.io/arch".into(), "arm64".into());
                }),
                arm(),
                RUN,
            ),
            (
                "nodeSelector misses",
                pod_with(|s| {
                    s.node_selector
                        .insert("kubernetes.io/arch".into(), "amd64".into());
                }),
                arm(),
                NEITHER,
            ),
            (
                "affinity terms are ORed",
                pod_with(|s| {
                    s.affinity = affinity(vec![
                        NodeSelectorTerm {
                            match_expressions: vec![requirement("tier", "In", &["1"])],
                            ..NodeSelectorTerm::default()
                        },
                        NodeSelectorTerm {
                            match_expressions: vec![requirement("tier", "Gt", &["2"])],
                            ..NodeSelectorTerm::default()
                        },
                    ]);
                }),
                arm(),
                RUN,
            ),
            (
                "affinity expressions are ANDed",
                pod_with(|s| {
                    s.affinity = affinity(vec![NodeSelectorTerm {
                        match_expressions: vec![
                            requirement("tier", "Exists", &[]),
                            requirement("kubernetes.io/arch", "NotIn", &["arm64"]),
                        ],
                        ..NodeSelectorTerm::default()
                    }]);
                }),
                arm(),
                NEITHER,
            ),
            (
                "affinity on the node's name",
                pod_with(|s| {
                    s.affinity = affinity(vec![NodeSelectorTerm {
                        match_fields: vec![requirement("metadata.name", "In", &["n2"])],
                        ..NodeSelectorTerm::default()
                    }]);
                }),
                arm(),
                NEITHER,
            ),
            (
                "an empty term matches nothing",
                pod_with(|s| s.affinity = affinity(vec![NodeSelectorTerm::default()])),
                arm(),
                NEITHER,
            ),
            (
                "template bound to another node",
                pod_with(|s| s.node_name = "n2".into()),
                arm(),
                NEITHER,
            ),
            (
                "untolerated NoSchedule keeps new pods off, old ones stay",
                pod_with(|_| {}),
                node("n1", &[], &[("dedicated", taint_effect::NO_SCHEDULE)]),
                STAY,
            ),
            (
                "untolerated NoExecute evicts",
                pod_with(|_| {}),
                node("n1", &[], &[("dedicated", taint_effect::NO_EXECUTE)]),
                NEITHER,
            ),
            (
                "PreferNoSchedule is no obstacle",
                pod_with(|_| {}),
                node(
                    "n1",
                    &[],
                    &[("dedicated", taint_effect::PREFER_NO_SCHEDULE)],
                ),
                RUN,
            ),
            (
                "tolerated taint",
                pod_with(|s| {
                    s.tolerations.push(Toleration {
                        key: "dedicated".into(),
                        operator: "Exists".into(),
                        ..Toleration::default()
                    });
                }),
                node("n1", &[], &[("dedicated", taint_effect::NO_EXECUTE)]),
                RUN,
            ),
            (
                "daemon tolerations cover node problems",
                pod_with(|_| {}),
                node(
                    "n1",
                    &[],
                    &[
                        (node_taints::UNREACHABLE, taint_effect::NO_EXECUTE),
                        (node_taints::NOT_READY, taint_effect::NO_EXECUTE),
                        (node_taints::DISK_PRESSURE, taint_effect::NO_SCHEDULE),
                        (node_taints::UNSCHEDULABLE, taint_effect::NO_SCHEDULE),
                    ],
                ),
                RUN,
            ),
            (
                "an offline node still counts",
                pod_with(|_| {}),
                node(
                    "n1",
                    &[],
                    &[
                        (node_taints::UNREACHABLE, taint_effect::NO_SCHEDULE),
                        (node_taints::UNREACHABLE, taint_effect::NO_EXECUTE),
                    ],
                ),
                RUN,
            ),
            (
                "network-unavailable only tolerated with host networking",
                pod_with(|_| {}),
                node(
                    "n1",
                    &[],
                    &[(node_taints::NETWORK_UNAVAILABLE, taint_effect::NO_SCHEDULE)],
                ),
                STAY,
            ),
            (
                "host-network pods tolerate network-unavailable",
                pod_with(|s| s.host_network = true),
                node(
                    "n1",
                    &[],
                    &[(node_taints::NETWORK_UNAVAILABLE, taint_effect::NO_SCHEDULE)],
                ),
                RUN,
            ),
        ];
        for (name, pod, node, want) in cases {
            assert_eq!(node_should_run(&pod, &node), want, "{name}");
        }
    }

    #[test]
    fn daemon_tolerations_replace_same_ones_and_keep_others() {
        let pod = pod_with(|s| {
            s.tolerations.push(Toleration {
                key: node_taints::NOT_READY.into(),
                operator: "Exists".into(),
                effect: taint_effect::NO_EXECUTE.into(),
                toleration_seconds: Some(30),
                ..Toleration::default()
            });
            s.tolerations.push(Toleration {
                key: "own".into(),
                operator: "Exists".into(),
                ..Toleration::default()
            });
        });
        let tolerations = &pod.spec.tolerations;
        assert_eq!(tolerations.len(), 7);
        assert_eq!(tolerations[0].key, node_taints::NOT_READY);
        assert_eq!(tolerations[0].toleration_seconds, None);
        assert_eq!(tolerations[1].key, "own");
    }

    #[test]
    fn misfit_names_the_short_resource() {
        let mut node = node("n1", &[], &[]);
        node.status.allocatable = BTreeMap::from([
            ("cpu".to_owned(), Quantity("1".into())),
            ("memory".to_owned(), Quantity("1Gi".into())),
            ("pods".to_owned(), Quantity("2".into())),
        ]);
        let requesting = |cpu: &str| {
            pod_with(|s| {
                s.containers.push(Container {
                    name: "c".into(),
                    resources: ResourceRequirements {
                        requests: BTreeMap::from([("cpu".to_owned(), Quantity(cpu.into()))]),
                        ..ResourceRequirements::default()
                    },
                    ..Container::default()
                });
            })
        };
        let running = requesting("600m");
        let mut finished = requesting("900m");
        finished.status.phase = "Succeeded".into();
        assert_eq!(
            misfit(
                &requesting("400m"),
                &node,
                [&running, &finished].into_iter()
            ),
            None
        );
        assert_eq!(
            misfit(&requesting("500m"), &node, [&running].into_iter()),
            Some("Insufficient cpu".to_owned())
        );
        assert_eq!(
            misfit(&requesting("0"), &node, [&running, &running].into_iter()),
            Some("Too many pods".to_owned())
        );
    }
}
