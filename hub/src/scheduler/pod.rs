//! What the scheduler reads from a pod: host ports, its workload, its images,
//! and for a pod being placed everything the filters and scores need,
//! computed once per attempt ([`Candidate`]).

use std::collections::HashMap;

use flotilla_shared::model::{Pod, PodSpec, Taint, Toleration, node_taints, taint_effect};

use super::affinity::{self, Pinned, Required, Term};
use super::intern::{Interner, stable_hash};
use super::resources::{PodUsage, RequestError};

/// kube's `DefaultBindAllHostIP`: a host port on every address.
const ALL_ADDRESSES: &str = "0.0.0.0";

/// One host port a pod holds on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPort {
    /// `0.0.0.0` when the pod names no `hostIP`.
    pub ip: String,
    /// `TCP` when the pod names none.
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Whether `self` and `other` cannot both be bound on one node (kube's
    /// `HostPortInfo.CheckConflict`): same protocol and port, and the same
    /// address or either on every address.
    pub(super) fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == ALL_ADDRESSES || other.ip == ALL_ADDRESSES)
    }
}

/// The host ports of the pod's containers and sidecars.
pub(super) fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().filter(|c| c.is_sidecar()))
        .flat_map(|c| &c.ports)
        .filter(|p| p.host_port > 0)
        .map(|p| HostPort {
            ip: if p.host_ip.is_empty() {
                ALL_ADDRESSES.to_owned()
            } else {
                p.host_ip.clone()
            },
            protocol: if p.protocol.is_empty() {
                "TCP".to_owned()
            } else {
                p.protocol.clone()
            },
            port: p.host_port,
        })
        .collect()
}

/// The workload a pod belongs to, for spreading its replicas: its
/// controller's uid, or else (a pod without a controller) its namespace
/// and exact labels. `None` for a pod with neither, which is not spread,
/// as kube's default spreading has no selector for it.
pub(super) fn workload_key(pod: &Pod) -> Option<String> {
    if let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        return Some(format!("uid\0{}", owner.uid));
    }
    if pod.metadata.labels.is_empty() {
        return None;
    }
    let mut key = format!("labels\0{}", pod.metadata.namespace);
    for (k, v) in &pod.metadata.labels {
        key.push('\0');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    Some(key)
}

/// kube's ImageLocality `normalizedImageName`: `:latest` when the reference
/// names no tag or digest.
pub(super) fn normalized_image_name(image: &str) -> String {
    let colon = image.rfind(':');
    let slash = image.rfind('/');
    if colon.is_none() || colon < slash {
        format!("{image}:latest")
    } else {
        image.to_owned()
    }
}

/// A pending pod being placed, with its rules compiled.
#[derive(Debug)]
pub(super) struct Candidate<'a> {
    pub usage: PodUsage,
    pub ports: Vec<HostPort>,
    pub tolerations: &'a [Toleration],
    /// Whether the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`.
    pub tolerates_unschedulable: bool,
    pub required: Option<Required>,
    pub pinned: Pinned,
    pub preferred: Vec<(i64, Term)>,
    /// Interned images (normalized) that some node has, with how many nodes have them.
    pub images: Vec<(u32, u32)>,
    /// Init plus regular containers, as ImageLocality counts them.
    pub containers: usize,
    /// Architecture bits the pod's images exist for (`u64::MAX`: unconstrained).
    pub arch_mask: u64,
    pub workload: Option<String>,
    /// Stable hash of namespace and name, to break ties.
    pub hash: u64,
}

impl<'a> Candidate<'a> {
    pub(super) fn new(
        pod: &'a Pod,
        images: &Interner,
        platforms: &HashMap<String, u64>,
    ) -> Result<Self, RequestError> {
        let spec = &pod.spec;
        let unschedulable = Taint {
            key: node_taints::UNSCHEDULABLE.to_owned(),
            effect: taint_effect::NO_SCHEDULE.to_owned(),
            ..Taint::default()
        };
        let mut arch_mask = u64::MAX;
        let mut image_ids = Vec::new();
        for container in spec.all_containers() {
            let name = normalized_image_name(&container.image);
            if let Some(mask) = platforms.get(&name) {
                arch_mask &= mask;
            }
            if let Some(id) = images.get(&name) {
                image_ids.push((id, images.refs(id)));
            }
        }
        Ok(Candidate {
            usage: PodUsage::of(spec)?,
            ports: host_ports(spec),
            tolerations: &spec.tolerations,
            tolerates_unschedulable: spec.tolerations.iter().any(|t| t.tolerates(&unschedulable)),
            required: Required::of(spec),
            pinned: affinity::pinned(spec),
            preferred: affinity::preferred(spec),
            images: image_ids,
            containers: spec.init_containers.len() + spec.containers.len(),
            arch_mask,
            workload: workload_key(pod),
            hash: stable_hash(&[&pod.metadata.namespace, &pod.metadata.name]),
        })
    }

    /// Whether the pod tolerates `taint`.
    pub(super) fn tolerates(&self, taint: &Taint) -> bool {
        self.tolerations.iter().any(|t| t.tolerates(taint))
    }
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{Container, ContainerPort, OwnerReference};

    use super::*;

    fn port(host_port: i32, protocol: &str, ip: &str) -> ContainerPort {
        ContainerPort {
            host_port,
            container_port: 80,
            protocol: protocol.to_owned(),
            host_ip: ip.to_owned(),
            ..ContainerPort::default()
        }
    }

    fn wanted(port_: i32, protocol: &str, ip: &str) -> HostPort {
        HostPort {
            ip: ip.to_owned(),
            protocol: protocol.to_owned(),
            port: port_,
        }
    }

    #[test]
    fn host_ports_default_protocol_and_address_and_skip_unmapped_ports() {
        let spec = PodSpec {
            containers: vec![Container {
                ports: vec![
                    port(8080, "", ""),
                    port(0, "TCP", ""),
                    port(53, "UDP", "10.0.0.1"),
                ],
                ..Container::default()
            }],
            init_containers: vec![
                Container {
                    ports: vec![port(9000, "", "")],
                    restart_policy: Some("Always".to_owned()),
                    ..Container::default()
                },
                Container {
                    ports: vec![port(9001, "", "")],
                    ..Container::default()
                },
            ],
            ..PodSpec::default()
        };
        assert_eq!(
            host_ports(&spec),
            vec![
                wanted(8080, "TCP", "0.0.0.0"),
                wanted(53, "UDP", "10.0.0.1"),
                wanted(9000, "TCP", "0.0.0.0"),
            ]
        );
    }

    #[test]
    fn host_ports_conflict_like_kubernetes() {
        let cases = [
            (
                "same port everywhere",
                wanted(80, "TCP", "0.0.0.0"),
                wanted(80, "TCP", "0.0.0.0"),
                true,
            ),
            (
                "other protocol",
                wanted(80, "TCP", "0.0.0.0"),
                wanted(80, "UDP", "0.0.0.0"),
                false,
            ),
            (
                "other port",
                wanted(80, "TCP", "0.0.0.0"),
                wanted(81, "TCP", "0.0.0.0"),
                false,
            ),
            (
                "every address against one",
                wanted(80, "TCP", "0.0.0.0"),
                wanted(80, "TCP", "10.0.0.1"),
                true,
            ),
            (
                "one address against every",
                wanted(80, "TCP", "10.0.0.1"),
                wanted(80, "TCP", "0.0.0.0"),
                true,
            ),
            (
                "same address",
                wanted(80, "TCP", "10.0.0.1"),
                wanted(80, "TCP", "10.0.0.1"),
                true,
            ),
            (
                "different addresses",
                wanted(80, "TCP", "10.0.0.1"),
                wanted(80, "TCP", "10.0.0.2"),
                false,
            ),
        ];
        for (name, a, b, expected) in cases {
            assert_eq!(a.conflicts(&b), expected, "{name}");
        }
    }

    #[test]
    fn workloads_are_the_controller_or_the_exact_labels() {
        let mut pod = Pod::default();
        pod.metadata.namespace = "default".to_owned();
        assert_eq!(workload_key(&pod), None);
        pod.metadata
            .labels
            .insert("app".to_owned(), "web".to_owned());
        let by_labels = workload_key(&pod).unwrap();
        let mut other_ns = pod.clone();
        other_ns.metadata.namespace = "edge".to_owned();
        assert_ne!(workload_key(&other_ns).unwrap(), by_labels);
        pod.metadata.owner_references.push(OwnerReference {
            uid: "rs-1".to_owned(),
            controller: Some(false),
            ..OwnerReference::default()
        });
        assert_eq!(
            workload_key(&pod).unwrap(),
            by_labels,
            "only a controller counts"
        );
        pod.metadata.owner_references.push(OwnerReference {
            uid: "rs-2".to_owned(),
            controller: Some(true),
            ..OwnerReference::default()
        });
        assert_eq!(workload_key(&pod).unwrap(), "uid\0rs-2");
    }

    #[test]
    fn image_names_get_latest_only_without_a_tag() {
        for (image, normalized) in [
            ("nginx", "nginx:latest"),
            ("nginx:1.27", "nginx:1.27"),
            ("registry.local:5000/app", "registry.local:5000/app:latest"),
            ("registry.local:5000/app:2", "registry.local:5000/app:2"),
            ("app@sha256:abcd", "app@sha256:abcd"),
        ] {
            assert_eq!(normalized_image_name(image), normalized, "{image}");
        }
    }
}
