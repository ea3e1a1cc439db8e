//! The scores: how much kube-scheduler's default plugins like each feasible
//! node, 0–100 each, normalized as kube normalizes them, then weighted as
//! its default profile weighs them and summed.
//!
//! | plugin | weight | what it prefers |
//! |---|---|---|
//! | NodeResourcesFit (LeastAllocated) | 1 | free cpu and memory after placing the pod |
//! | NodeResourcesBalancedAllocation | 1 | cpu and memory used in the same proportion |
//! | ImageLocality | 1 | the pod's images already on the node, by size and spread |
//! | TaintToleration | 3 | fewer untolerated `PreferNoSchedule` taints |
//! | NodeAffinity | 2 | the pod's preferred terms |
//! | PodTopologySpread (system defaults) | 2 | fewer replicas of the workload on the node and in its zone |

use super::intern::FxMap;
use super::node::NodeState;
use super::pod::Candidate;

/// kube's `framework.MaxNodeScore`.
pub(super) const MAX_NODE_SCORE: i64 = 100;

pub(super) const FIT_WEIGHT: i64 = 1;
pub(super) const BALANCED_WEIGHT: i64 = 1;
pub(super) const IMAGE_WEIGHT: i64 = 1;
pub(super) const TAINT_WEIGHT: i64 = 3;
pub(super) const AFFINITY_WEIGHT: i64 = 2;
pub(super) const SPREAD_WEIGHT: i64 = 2;

/// The system default spreading constraints: `maxSkew` 3 over hostnames,
/// 5 over zones (`ScheduleAnyway`).
const HOST_MAX_SKEW: i64 = 3;
const ZONE_MAX_SKEW: i64 = 5;

/// NodeResourcesFit with the LeastAllocated strategy (cpu and memory
/// weighted 1 each): `(allocatable - requested) * 100 / allocatable` per
/// resource, with requests counted as kube's `NonZeroRequested` counts them.
pub(super) fn least_allocated(node: &NodeState, candidate: &Candidate<'_>) -> i64 {
    let allocatable = &node.allocatable.resources;
    let pairs = [
        (
            allocatable.cpu_m,
            node.nonzero_cpu_m + candidate.usage.nonzero_cpu_m,
        ),
        (
            allocatable.memory,
            node.nonzero_memory + candidate.usage.nonzero_memory,
        ),
    ];
    let (mut score, mut weights) = (0, 0);
    for (allocatable, requested) in pairs {
        if allocatable <= 0 {
            continue;
        }
        weights += 1;
        if requested <= allocatable {
            score += scaled(allocatable - requested, allocatable);
        }
    }
    if weights == 0 { 0 } else { score / weights }
}

/// `part * 100 / whole` in 64 bits (128-bit division is several times
/// slower and only needed beyond 92 petabytes).
fn scaled(part: i64, whole: i64) -> i64 {
    match part.checked_mul(MAX_NODE_SCORE) {
        Some(product) => product / whole,
        None => (i128::from(part) * i128::from(MAX_NODE_SCORE) / i128::from(whole)) as i64,
    }
}

/// NodeResourcesBalancedAllocation: `(1 - std) * 100` of the cpu and memory
/// fractions the node would have in use, requests counted as requested.
pub(super) fn balanced_allocation(node: &NodeState, candidate: &Candidate<'_>) -> i64 {
    let allocatable = &node.allocatable.resources;
    let wanted = &candidate.usage.requests;
    let mut fractions = [0f64; 2];
    let mut count = 0;
    for (allocatable, requested) in [
        (allocatable.cpu_m, node.requested.cpu_m + wanted.cpu_m),
        (allocatable.memory, node.requested.memory + wanted.memory),
    ] {
        if allocatable <= 0 {
            continue;
        }
        fractions[count] = (requested as f64 / allocatable as f64).min(1.0);
        count += 1;
    }
    let std = if count == 2 {
        ((fractions[0] - fractions[1]) / 2.0).abs()
    } else {
        0.0
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

const MB: i64 = 1024 * 1024;
/// ImageLocality's thresholds: below 23 MB an image is not worth preferring;
/// 1000 MB per container is the most that counts.
const MIN_IMAGE_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// ImageLocality: the sizes of the pod's images present on the node, each
/// scaled by the share of nodes that have it, mapped onto 0–100 between
/// the thresholds.
pub(super) fn image_locality(node: &NodeState, candidate: &Candidate<'_>, all_nodes: usize) -> i64 {
    let mut sum: i64 = 0;
    for &(image, holders) in &candidate.images {
        if let Some(size) = node.image_size(image) {
            let spread = f64::from(holders) / all_nodes.max(1) as f64;
            sum = sum.saturating_add((size as f64 * spread) as i64);
        }
    }
    let max_threshold = MAX_CONTAINER_THRESHOLD * candidate.containers.max(1) as i64;
    let sum = sum.clamp(MIN_IMAGE_THRESHOLD, max_threshold);
    MAX_NODE_SCORE * (sum - MIN_IMAGE_THRESHOLD) / (max_threshold - MIN_IMAGE_THRESHOLD)
}

/// TaintToleration's raw score: how many `PreferNoSchedule` taints the pod
/// does not tolerate (normalized in reverse).
pub(super) fn untolerated_preferences(node: &NodeState, candidate: &Candidate<'_>) -> i64 {
    node.prefer_taints
        .iter()
        .filter(|t| !candidate.tolerates(t))
        .count() as i64
}

/// NodeAffinity's raw score: the weights of the preferred terms the node matches.
pub(super) fn preferred_affinity(node: &NodeState, candidate: &Candidate<'_>) -> i64 {
    candidate
        .preferred
        .iter()
        .filter(|(_, term)| term.matches(&node.name, &node.labels))
        .map(|(weight, _)| weight)
        .sum()
}

/// kube's `helper.DefaultNormalizeScore`: scale to 0–100 by the highest
/// score, reversed if asked (all 100 when reversed and every score is 0).
pub(super) fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores {
        *score = MAX_NODE_SCORE * *score / max;
        if reverse {
            *score = MAX_NODE_SCORE - *score;
        }
    }
}

/// PodTopologySpread with the system default constraints, for a workload
/// that already has pods somewhere: per feasible node
/// `count * ln(domains + 2) + maxSkew - 1` for its hostname and (if it has
/// one) its zone, rounded, then normalized so that the emptiest node gets
/// 100 (`100 * (max + min - score) / max`). `host_counts[i]` is the
/// workload's pods on `nodes[i]`; `zone_counts` the workload's pods by zone.
pub(super) fn topology_spread(
    nodes: &[&NodeState],
    host_counts: &[i64],
    zone_counts: Option<&FxMap<u32, u32>>,
    seen_zones: &mut Vec<bool>,
    out: &mut [i64],
) {
    // Distinct zones among the nodes, nodes without one forming one more.
    seen_zones.clear();
    let mut domains = 0;
    for node in nodes {
        let index = node.zone.map_or(0, |z| z as usize + 1);
        if index >= seen_zones.len() {
            seen_zones.resize(index + 1, false);
        }
        if !seen_zones[index] {
            seen_zones[index] = true;
            domains += 1;
        }
    }
    let host_weight = ((nodes.len() + 2) as f64).ln();
    let zone_weight = ((domains + 2) as f64).ln();
    for (i, node) in nodes.iter().enumerate() {
        let mut score = host_counts[i] as f64 * host_weight + (HOST_MAX_SKEW - 1) as f64;
        if let Some(zone) = node.zone {
            let count = zone_counts.and_then(|c| c.get(&zone)).copied().unwrap_or(0);
            score += f64::from(count) * zone_weight + (ZONE_MAX_SKEW - 1) as f64;
        }
        out[i] = score.round() as i64;
    }
    let min = out.iter().copied().min().unwrap_or(0);
    let max = out.iter().copied().max().unwrap_or(0);
    for score in out.iter_mut() {
        *score = if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE * (max + min - *score) / max
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_scales_by_the_maximum() {
        let cases: [(&[i64], bool, &[i64]); 4] = [
            (&[0, 5, 10], false, &[0, 50, 100]),
            (&[0, 5, 10], true, &[100, 50, 0]),
            (&[0, 0], false, &[0, 0]),
            (&[0, 0], true, &[100, 100]),
        ];
        for (input, reverse, expected) in cases {
            let mut scores = input.to_vec();
            default_normalize(&mut scores, reverse);
            assert_eq!(scores, expected, "{input:?} reverse {reverse}");
        }
    }

    #[test]
    fn topology_spread_prefers_the_emptiest_node_and_zone() {
        let zoned = |zone| NodeState {
            zone,
            ..NodeState::default()
        };
        let (a, b, c) = (zoned(Some(1)), zoned(Some(1)), zoned(Some(2)));
        let nodes = [&a, &b, &c];
        let zone_counts: FxMap<u32, u32> = [(1, 1)].into_iter().collect();
        let mut out = [0; 3];
        // One replica on a (zone 1): c, alone in the empty zone, wins; b,
        // empty but in a's zone, comes next.
        topology_spread(
            &nodes,
            &[1, 0, 0],
            Some(&zone_counts),
            &mut Vec::new(),
            &mut out,
        );
        assert_eq!(out, [66, 88, 100]);
    }
}
