//! A pod's quality-of-service class, computed as Kubernetes' `ComputePodQOS`
//! (`pkg/apis/core/helper/qos/qos.go`) does from the requests and limits of
//! its containers. The API server writes it into `status.qosClass` when the
//! pod is created; it never changes afterwards.

use std::collections::BTreeMap;

use flotilla_shared::model::{PodSpec, ResourceList, qos_class};
use flotilla_shared::quantity::Amount;

/// The resources that count for QoS.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// `Guaranteed` when every container limits both cpu and memory and the
/// summed requests equal the summed limits; `BestEffort` when no container
/// requests or limits either; `Burstable` otherwise. Zero and unparsable
/// quantities count as absent.
pub fn pod_qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, Amount> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Amount> = BTreeMap::new();
    let mut guaranteed = true;
    for container in spec.containers.iter().chain(&spec.init_containers) {
        add_positive(&mut requests, &container.resources.requests);
        let found = add_positive(&mut limits, &container.resources.limits);
        if !QOS_RESOURCES.iter().all(|name| found.contains(name)) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return qos_class::BEST_EFFORT;
    }
    let requests_match_limits = requests
        .iter()
        .all(|(name, request)| limits.get(name) == Some(request));
    if guaranteed && requests_match_limits && requests.len() == limits.len() {
        qos_class::GUARANTEED
    } else {
        qos_class::BURSTABLE
    }
}

/// Adds the positive cpu and memory quantities of `list` to `sums`;
/// returns the names it found.
fn add_positive<'a>(sums: &mut BTreeMap<&'a str, Amount>, list: &ResourceList) -> Vec<&'a str> {
    let mut found = Vec::new();
    for name in QOS_RESOURCES {
        let Some(amount) = list.get(name).and_then(|q| q.parse().ok()) else {
            continue;
        };
        if amount <= Amount::zero() {
            continue;
        }
        found.push(name);
        let sum = sums.entry(name).or_insert_with(Amount::zero);
        *sum = sum.checked_add(amount).unwrap_or(Amount::MAX);
    }
    found
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{Container, ResourceRequirements};
    use flotilla_shared::quantity::Quantity;

    use super::*;

    fn list(entries: &[(&str, &str)]) -> ResourceList {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect()
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: "c".to_owned(),
            resources: ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                claims: Vec::new(),
            },
            ..Container::default()
        }
    }

    #[test]
    fn qos_class_is_computed_like_kubernetes() {
        let full = [("cpu", "500m"), ("memory", "64Mi")];
        let cases: Vec<(&str, Vec<Container>, Vec<Container>, &str)> = vec![
            (
                "nothing set",
                vec![container(&[], &[])],
                vec![],
                "BestEffort",
            ),
            (
                "zero values count as absent",
                vec![container(&[("cpu", "0")], &[("memory", "0")])],
                vec![],
                "BestEffort",
            ),
            (
                "other resources do not count",
                vec![container(&[("example.com/gpio", "1")], &[])],
                vec![],
                "BestEffort",
            ),
            (
                "equal requests and limits",
                vec![container(&full, &full)],
                vec![],
                "Guaranteed",
            ),
            (
                "equal when written differently",
                vec![container(
                    &[("cpu", "0.5"), ("memory", "67108864")],
                    &[("cpu", "500m"), ("memory", "64Mi")],
                )],
                vec![],
                "Guaranteed",
            ),
            (
                "requests below limits",
                vec![container(&[("cpu", "100m"), ("memory", "64Mi")], &full)],
                vec![],
                "Burstable",
            ),
            (
                "only a cpu limit",
                vec![container(&[("cpu", "1")], &[("cpu", "1")])],
                vec![],
                "Burstable",
            ),
            (
                "one container without limits",
                vec![container(&full, &full), container(&[], &[])],
                vec![],
                "Burstable",
            ),
            (
                "an init container without limits",
                vec![container(&full, &full)],
                vec![container(&[("cpu", "1m")], &[])],
                "Burstable",
            ),
            (
                "init containers with limits count in the sums",
                vec![container(&full, &full)],
                vec![container(&full, &full)],
                "Guaranteed",
            ),
        ];
        for (name, containers, init_containers, expected) in cases {
            let spec = PodSpec {
                containers,
                init_containers,
                ..PodSpec::default()
            };
            assert_eq!(pod_qos_class(&spec), expected, "{name}");
        }
    }
}
