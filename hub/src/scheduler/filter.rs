//! The filters: whether a pod may go to a node, and if not, the reasons
//! kube-scheduler would give, worded as its plugins word them.
//!
//! In kube's default order, stopping at the first plugin that refuses:
//! NodeUnschedulable, TaintToleration (the readiness taint included, see
//! `node::readiness_taint`), NodeAffinity (nodeSelector and required
//! affinity), ImageArchitecture (Flotilla's: the node's architecture must be
//! one the pod's images are published for), NodePorts, NodeResourcesFit.
//! NodeName needs no filter: a pod with `spec.nodeName` is not pending.

use std::collections::BTreeMap;

use super::node::NodeState;
use super::pod::Candidate;

/// kube's `NodeUnschedulable` reason.
const UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// kube's `NodeAffinity` reason (`ErrReasonPod`).
const NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// Flotilla's ImageArchitecture reason.
const IMAGE_ARCHITECTURE: &str = "node(s) didn't match the architectures of Pod's images";
/// kube's `NodePorts` reason.
const NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
/// kube's NodeAffinity PreFilter reason when `metadata.name` terms conflict.
pub(super) const AFFINITY_CONFLICT: &str = "pod affinity terms conflict";
/// kube's status for the nodes a NodeAffinity PreFilter left out.
pub(super) const NOT_PINNED: &str = "node(s) didn't satisfy plugin(s) [NodeAffinity]";

const TOO_MANY_PODS: u64 = 1;
const CPU: u64 = 1 << 1;
const MEMORY: u64 = 1 << 2;
/// Bit of the pod's `i`-th scalar request.
fn scalar_bit(i: usize) -> u64 {
    1 << (3 + i).min(63)
}

/// Why a node was refused; turned into words only when the pod cannot be
/// placed anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    Unschedulable,
    /// Index in the node's `filter_taints` of the first untolerated taint.
    Taint(usize),
    NodeAffinity,
    ImageArchitecture,
    NodePorts,
    /// Bits: too many pods, cpu, memory, then the pod's scalars in order.
    Resources(u64),
}

/// Runs the filters of `candidate` against `node`.
pub(super) fn filter(node: &NodeState, candidate: &Candidate<'_>) -> Result<(), Failure> {
    if node.unschedulable && !candidate.tolerates_unschedulable {
        return Err(Failure::Unschedulable);
    }
    if let Some(i) = node
        .filter_taints
        .iter()
        .position(|t| !candidate.tolerates(t))
    {
        return Err(Failure::Taint(i));
    }
    if let Some(required) = &candidate.required
        && !required.matches(&node.name, &node.labels)
    {
        return Err(Failure::NodeAffinity);
    }
    if candidate.arch_mask != u64::MAX {
        let fits = node
            .arch
            .is_some_and(|bit| bit < 64 && candidate.arch_mask & (1 << bit) != 0);
        if !fits {
            return Err(Failure::ImageArchitecture);
        }
    }
    if candidate
        .ports
        .iter()
        .any(|wanted| node.host_ports.iter().any(|used| wanted.conflicts(used)))
    {
        return Err(Failure::NodePorts);
    }
    let missing = insufficient(node, candidate);
    if missing != 0 {
        return Err(Failure::Resources(missing));
    }
    Ok(())
}

/// NodeResourcesFit's `fitsRequest`: one more pod than `pods` allows, or a
/// requested resource beyond what is left.
fn insufficient(node: &NodeState, candidate: &Candidate<'_>) -> u64 {
    let allocatable = &node.allocatable.resources;
    let requested = &node.requested;
    let wanted = &candidate.usage.requests;
    let mut bits = 0;
    if node.pods + 1 > node.allocatable.pods {
        bits |= TOO_MANY_PODS;
    }
    if wanted.cpu_m > 0 && wanted.cpu_m > allocatable.cpu_m - requested.cpu_m {
        bits |= CPU;
    }
    if wanted.memory > 0 && wanted.memory > allocatable.memory - requested.memory {
        bits |= MEMORY;
    }
    for (i, (name, value)) in wanted.scalars.iter().enumerate() {
        if *value > 0 && *value > allocatable.scalar(name) - requested.scalar(name) {
            bits |= scalar_bit(i);
        }
    }
    bits
}

/// The reasons kube-scheduler gives for `failure`.
pub(super) fn reasons(
    failure: Failure,
    node: &NodeState,
    candidate: &Candidate<'_>,
) -> Vec<String> {
    match failure {
        Failure::Unschedulable => vec![UNSCHEDULABLE.to_owned()],
        Failure::Taint(i) => {
            let taint = &node.filter_taints[i];
            vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key, taint.value
            )]
        }
        Failure::NodeAffinity => vec![NODE_AFFINITY.to_owned()],
        Failure::ImageArchitecture => vec![IMAGE_ARCHITECTURE.to_owned()],
        Failure::NodePorts => vec![NODE_PORTS.to_owned()],
        Failure::Resources(bits) => {
            let mut out = Vec::new();
            if bits & TOO_MANY_PODS != 0 {
                out.push("Too many pods".to_owned());
            }
            if bits & CPU != 0 {
                out.push("Insufficient cpu".to_owned());
            }
            if bits & MEMORY != 0 {
                out.push("Insufficient memory".to_owned());
            }
            for (i, (name, _)) in candidate.usage.requests.scalars.iter().enumerate() {
                if bits & scalar_bit(i) != 0 {
                    out.push(format!("Insufficient {name}"));
                }
            }
            out
        }
    }
}

/// kube's `FitError.Error()`: `0/<all> nodes are available: ` then each
/// reason with the number of nodes that gave it, as `"<n> <reason>"`
/// strings sorted as Go's `sort.Strings` sorts them, joined by `, `, and a
/// final period.
pub(super) fn fit_error(all_nodes: usize, reasons: impl IntoIterator<Item = String>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    let mut histogram: Vec<String> = counts
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    histogram.sort();
    let mut message = format!("0/{all_nodes} nodes are available:");
    if !histogram.is_empty() {
        message.push(' ');
        message.push_str(&histogram.join(", "));
        message.push('.');
    }
    message
}

/// kube's message when a PreFilter refuses the pod outright.
pub(super) fn prefilter_error(all_nodes: usize, reason: &str) -> String {
    format!("0/{all_nodes} nodes are available: {reason}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_counts_reasons_and_sorts_them_as_go_strings() {
        let reasons = ["Insufficient memory"; 3]
            .into_iter()
            .chain(["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"; 2])
            .map(str::to_owned);
        assert_eq!(
            fit_error(5, reasons),
            "0/5 nodes are available: 2 node(s) had untolerated taint \
             {node.kubernetes.io/unreachable: }, 3 Insufficient memory."
        );
        // Sorting is by the whole string, count first, as kube's is.
        let reasons = ["Insufficient cpu"; 10]
            .into_iter()
            .chain(["Insufficient memory"; 2])
            .map(str::to_owned);
        assert_eq!(
            fit_error(12, reasons),
            "0/12 nodes are available: 10 Insufficient cpu, 2 Insufficient memory."
        );
        assert_eq!(fit_error(0, []), "0/0 nodes are available:");
        assert_eq!(
            prefilter_error(3, AFFINITY_CONFLICT),
            "0/3 nodes are available: pod affinity terms conflict."
        );
    }
}
