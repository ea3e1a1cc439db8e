//! The Endpoints controller: keeps each Service's Endpoints listing the pods
//! its selector picks.
//!
//! Ported from Kubernetes' `pkg/controller/endpoint/endpoints_controller.go`
//! (`syncService`) with `RepackSubsets` from `pkg/api/v1/endpoints/util.go`:
//!
//! - a Service with a selector (and not of type `ExternalName`) gets an
//!   Endpoints of the same name: one address per selected pod that has an IP
//!   (of the Service's IP family), is not terminal and, unless
//!   `publishNotReadyAddresses`, is not being deleted; ready pods in
//!   `addresses`, the others in `notReadyAddresses` (all ready with
//!   `publishNotReadyAddresses`); each address names its node and its pod;
//! - ports come from the Service's ports, a named `targetPort` looked up
//!   among each pod's container (and sidecar) ports of the same protocol, so
//!   pods that resolve a name to different numbers land in different
//!   subsets; a pod without the named port is left out of that port; a
//!   headless Service without ports lists addresses alone;
//! - addresses with the same set of ports share a subset; addresses are
//!   sorted by IP and pod uid, ports by name, number and protocol, subsets by
//!   their addresses (Kubernetes sorts subsets by a hash; any fixed order
//!   serves);
//! - the Endpoints carry the Service's labels, plus
//!   `service.kubernetes.io/headless` for a headless Service; more than 1000
//!   addresses are truncated (ready ones kept first) and annotated
//!   `endpoints.kubernetes.io/over-capacity: truncated`;
//! - written only when they differ (an update starts from the cached
//!   Endpoints); a Service without selector keeps the Endpoints written by
//!   hand; a deleted Service's Endpoints are deleted (Kubernetes sets no
//!   owner reference on them).
//!
//! Not carried over: the `endpoints.kubernetes.io/last-change-trigger-time`
//! annotation, which needs the time each pod change was first seen (state
//! this core does not keep); it is left as found.

use std::collections::BTreeMap;
use std::net::IpAddr;

use flotilla_shared::model::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, IntOrString, Object, ObjectMeta,
    ObjectReference, Pod, Service, ServicePort,
};

use super::{Action, Cache, Command, ObjectKey, Propagation, Reconciler, key_of};

/// The label that marks the Endpoints of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The annotation that says the Endpoints were truncated.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// At most this many addresses (ready and not) in one Endpoints.
pub const MAX_CAPACITY: usize = 1000;

/// (name, port, protocol, appProtocol): an [`EndpointPort`] that sorts.
type PortKey = (String, i32, String, Option<String>);
/// (IP, pod uid): what makes two addresses the same (`addressKey`).
type AddressKey = (String, String);

/// The Endpoints controller's core.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointsController;

impl Reconciler for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoint-controller"
    }

    fn keys_for(&self, object: &Object, cache: &Cache) -> Vec<ObjectKey> {
        match object {
            Object::Service(_) => vec![key_of(object)],
            // The Services that select the pod now, and those whose
            // Endpoints still list it (its labels changed, it went away).
            Object::Pod(pod) => cache
                .in_namespace("Service", &pod.metadata.namespace)
                .filter_map(|service| match service {
                    Object::Service(svc)
                        if selects(svc, pod) || listed(cache, svc, &pod.metadata.name) =>
                    {
                        Some(key_of(service))
                    }
                    _ => None,
                })
                .collect(),
            // Endpoints changed or deleted by someone else are put back.
            Object::Endpoints(ep) => {
                match cache.find("Service", &ep.metadata.namespace, &ep.metadata.name) {
                    Some(service @ Object::Service(svc)) if manages(svc) => vec![key_of(service)],
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn reconcile(&self, key: &ObjectKey, cache: &Cache, _now: std::time::SystemTime) -> Action {
        let current = match cache.find("Endpoints", &key.namespace, &key.name) {
            Some(Object::Endpoints(ep)) => Some(ep),
            _ => None,
        };
        let Some(Object::Service(svc)) = cache.get(key) else {
            // The Service is gone: so are its Endpoints.
            return match current {
                Some(ep) => Action::with(vec![Command::Delete {
                    key: ObjectKey::new("Endpoints", &key.namespace, &key.name),
                    uid: Some(ep.metadata.uid.clone()),
                    propagation: Propagation::Background,
                }]),
                None => Action::await_change(),
            };
        };
        if !manages(svc) {
            return Action::await_change();
        }
        let (subsets, truncated) = truncate(desired_subsets(svc, cache));
        let labels = desired_labels(svc);
        match current {
            Some(ep) => {
                let annotated = ep
                    .metadata
                    .annotations
                    .contains_key(OVER_CAPACITY_ANNOTATION);
                if ep.subsets == subsets && ep.metadata.labels == labels && annotated == truncated {
                    return Action::await_change();
                }
                let mut updated = ep.clone();
                updated.subsets = subsets;
                updated.metadata.labels = labels;
                annotate(&mut updated.metadata, truncated);
                Action::with(vec![Command::Update(Box::new(Object::Endpoints(updated)))])
            }
            None => {
                let mut metadata = ObjectMeta {
                    name: svc.metadata.name.clone(),
                    namespace: svc.metadata.namespace.clone(),
                    labels,
                    ..ObjectMeta::default()
                };
                annotate(&mut metadata, truncated);
                let created = Endpoints {
                    metadata,
                    subsets,
                    ..Endpoints::default()
                };
                Action::with(vec![Command::Create(Box::new(Object::from(created)))])
            }
        }
    }
}

/// Whether this controller writes `svc`'s Endpoints: it has a selector and
/// is not an `ExternalName` alias.
fn manages(svc: &Service) -> bool {
    !svc.spec.selector.is_empty() && svc.spec.type_ != "ExternalName"
}

/// Whether `svc` selects `pod` (a selector-less Service selects nothing).
fn selects(svc: &Service, pod: &Pod) -> bool {
    manages(svc)
        && svc
            .spec
            .selector
            .iter()
            .all(|(k, v)| pod.metadata.labels.get(k) == Some(v))
}

/// Whether `svc`'s Endpoints list the pod named `pod`.
fn listed(cache: &Cache, svc: &Service, pod: &str) -> bool {
    let Some(Object::Endpoints(ep)) =
        cache.find("Endpoints", &svc.metadata.namespace, &svc.metadata.name)
    else {
        return false;
    };
    manages(svc)
        && ep
            .subsets
            .iter()
            .flat_map(|s| s.addresses.iter().chain(&s.not_ready_addresses))
            .any(|a| {
                a.target_ref
                    .as_ref()
                    .is_some_and(|r| r.kind == "Pod" && r.name == pod)
            })
}

fn headless(svc: &Service) -> bool {
    svc.spec.cluster_ip.is_empty() || svc.spec.cluster_ip == "None"
}

/// The Service's labels, plus the headless marker when it has no cluster IP.
fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone();
    if headless(svc) {
        labels.insert(HEADLESS_LABEL.to_owned(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

fn annotate(metadata: &mut ObjectMeta, truncated: bool) {
    if truncated {
        metadata
            .annotations
            .insert(OVER_CAPACITY_ANNOTATION.to_owned(), "truncated".to_owned());
    } else {
        metadata.annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
}

/// `ShouldPodBeInEndpoints`.
fn in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    !pod.is_terminal()
        && (!pod.status.pod_ip.is_empty() || !pod.status.pod_ips.is_empty())
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

fn is_ipv6(ip: &str) -> bool {
    ip.parse::<IpAddr>()
        .map(|ip| ip.is_ipv6())
        .unwrap_or_else(|_| ip.contains(':'))
}

/// The pod's IP of the Service's family (`podToEndpointAddressForService`).
fn pod_ip_for<'a>(svc: &Service, pod: &'a Pod) -> Option<&'a str> {
    let ipv6 = match svc.spec.ip_families.first() {
        Some(family) => family == "IPv6",
        None if !headless(svc) => is_ipv6(&svc.spec.cluster_ip),
        None => is_ipv6(&pod.status.pod_ip),
    };
    let mut ips: Vec<&str> = pod.status.pod_ips.iter().map(|p| p.ip.as_str()).collect();
    if ips.is_empty() {
        ips.push(&pod.status.pod_ip);
    }
    ips.into_iter()
        .find(|ip| !ip.is_empty() && is_ipv6(ip) == ipv6)
}

fn protocol(p: &str) -> &str {
    if p.is_empty() { "TCP" } else { p }
}

/// `FindPort`: the number the Service port's `targetPort` means on `pod`.
fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None | Some(IntOrString::Int(0)) => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .containers
            .iter()
            .chain(pod.spec.init_containers.iter().filter(|c| c.is_sidecar()))
            .flat_map(|c| &c.ports)
            .find(|p| p.name == *name && protocol(&p.protocol) == protocol(&port.protocol))
            .map(|p| p.container_port),
    }
}

/// The subsets `svc` should have, repacked and sorted.
fn desired_subsets(svc: &Service, cache: &Cache) -> Vec<EndpointSubset> {
    let publish = svc.spec.publish_not_ready_addresses;
    // port (None: a headless Service without ports) → address → (address, ready)
    let mut by_port: BTreeMap<Option<PortKey>, BTreeMap<AddressKey, (EndpointAddress, bool)>> =
        BTreeMap::new();
    let mut add = |port: Option<PortKey>, address: &EndpointAddress, ready: bool| {
        let key = (
            address.ip.clone(),
            address
                .target_ref
                .as_ref()
                .map(|r| r.uid.clone())
                .unwrap_or_default(),
        );
        by_port
            .entry(port)
            .or_default()
            .entry(key)
            // Not ready wins over ready.
            .and_modify(|(_, was_ready)| *was_ready &= ready)
            .or_insert_with(|| (address.clone(), ready));
    };
    for object in cache.in_namespace("Pod", &svc.metadata.namespace) {
        let Object::Pod(pod) = object else { continue };
        if !selects(svc, pod) || !in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ip_for(svc, pod) else {
            continue;
        };
        let address = address_of(svc, pod, ip);
        let ready = publish || pod.is_ready();
        if svc.spec.ports.is_empty() {
            if svc.spec.cluster_ip == "None" {
                add(None, &address, ready);
            }
            continue;
        }
        for port in &svc.spec.ports {
            if let Some(number) = find_port(pod, port) {
                let key = (
                    port.name.clone(),
                    number,
                    protocol(&port.protocol).to_owned(),
                    port.app_protocol.clone(),
                );
                add(Some(key), &address, ready);
            }
        }
    }
    repack(by_port)
}

fn address_of(svc: &Service, pod: &Pod, ip: &str) -> EndpointAddress {
    let hostname = if !pod.spec.hostname.is_empty() && pod.spec.subdomain == svc.metadata.name {
        pod.spec.hostname.clone()
    } else {
        String::new()
    };
    EndpointAddress {
        ip: ip.to_owned(),
        hostname,
        node_name: (!pod.spec.node_name.is_empty()).then(|| pod.spec.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: "Pod".into(),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
    }
}

/// `RepackSubsets`: one subset per distinct set of (address, readiness),
/// with every port that set offers.
fn repack(
    by_port: BTreeMap<Option<PortKey>, BTreeMap<AddressKey, (EndpointAddress, bool)>>,
) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<Vec<(AddressKey, bool)>, EndpointSubset> = BTreeMap::new();
    for (port, addresses) in by_port {
        let signature = addresses
            .iter()
            .map(|(key, (_, ready))| (key.clone(), *ready))
            .collect();
        let subset = groups.entry(signature).or_insert_with(|| {
            let mut subset = EndpointSubset::default();
            for (address, ready) in addresses.into_values() {
                if ready {
                    subset.addresses.push(address);
                } else {
                    subset.not_ready_addresses.push(address);
                }
            }
            subset
        });
        if let Some((name, port, protocol, app_protocol)) = port {
            subset.ports.push(EndpointPort {
                name,
                port,
                protocol,
                app_protocol,
            });
        }
    }
    groups.into_values().collect()
}

/// `truncateEndpoints`: at most [`MAX_CAPACITY`] addresses, ready ones
/// first, spread over the subsets in proportion; answers whether it cut.
fn truncate(mut subsets: Vec<EndpointSubset>) -> (Vec<EndpointSubset>, bool) {
    let ready: usize = subsets.iter().map(|s| s.addresses.len()).sum();
    let not_ready: usize = subsets.iter().map(|s| s.not_ready_addresses.len()).sum();
    if ready + not_ready <= MAX_CAPACITY {
        return (subsets, false);
    }
    let cut_ready = ready > MAX_CAPACITY;
    let (room, total) = if cut_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut left = room;
    for subset in &mut subsets {
        let list = if cut_ready {
            subset.not_ready_addresses.clear();
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        // ceil(len / total * room), in integers.
        let share = (list.len() * room).div_ceil(total).min(left);
        list.truncate(share);
        left -= list.len();
    }
    (subsets, true)
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{
        Container, ContainerPort, PodCondition, PodIp, PodSpec, PodStatus, ServiceSpec,
    };

    use super::*;

    fn service(ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: "default".into(),
                uid: "svc-uid".into(),
                labels: [("team".to_owned(), "edge".to_owned())].into(),
                ..ObjectMeta::default()
            },
            spec: ServiceSpec {
                selector: [("app".to_owned(), "web".to_owned())].into(),
                ports,
                cluster_ip: "10.96.0.10".into(),
                ..ServiceSpec::default()
            },
            ..Service::default()
        }
    }

    fn port(name: &str, port: i32, target: IntOrString) -> ServicePort {
        ServicePort {
            name: name.into(),
            protocol: "TCP".into(),
            port,
            target_port: Some(target),
            ..ServicePort::default()
        }
    }

    /// A pod `name` labelled `app: web` at `ip` on node `gw-1`, exposing
    /// `http` on `http_port`.
    fn pod(name: &str, ip: &str, ready: bool, http_port: i32) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("uid-{name}"),
                labels: [("app".to_owned(), "web".to_owned())].into(),
                ..ObjectMeta::default()
            },
            spec: PodSpec {
                node_name: "gw-1".into(),
                containers: vec![Container {
                    name: "app".into(),
                    ports: vec![ContainerPort {
                        name: "http".into(),
                        container_port: http_port,
                        protocol: "TCP".into(),
                        ..ContainerPort::default()
                    }],
                    ..Container::default()
                }],
                ..PodSpec::default()
            },
            status: PodStatus {
                phase: "Running".into(),
                pod_ip: ip.into(),
                pod_ips: if ip.is_empty() {
                    vec![]
                } else {
                    vec![PodIp { ip: ip.into() }]
                },
                conditions: vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }],
                ..PodStatus::default()
            },
            ..Pod::default()
        }
    }

    fn address(name: &str, ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            hostname: String::new(),
            node_name: Some("gw-1".into()),
            target_ref: Some(ObjectReference {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
                ..ObjectReference::default()
            }),
        }
    }

    fn endpoint_port(name: &str, port: i32) -> EndpointPort {
        EndpointPort {
            name: name.into(),
            port,
            protocol: "TCP".into(),
            app_protocol: None,
        }
    }

    fn subset(
        ready: Vec<EndpointAddress>,
        not_ready: Vec<EndpointAddress>,
        ports: Vec<EndpointPort>,
    ) -> EndpointSubset {
        EndpointSubset {
            addresses: ready,
            not_ready_addresses: not_ready,
            ports,
        }
    }

    fn endpoints(subsets: Vec<EndpointSubset>) -> Endpoints {
        let mut ep = Endpoints {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: "default".into(),
                labels: [("team".to_owned(), "edge".to_owned())].into(),
                ..ObjectMeta::default()
            },
            subsets,
            ..Endpoints::default()
        };
        ep.api_version = "v1".into();
        ep.kind = "Endpoints".into();
        ep
    }

    fn cache_of(objects: impl IntoIterator<Item = Object>) -> Cache {
        let mut cache = Cache::new();
        for object in objects {
            cache.apply(object);
        }
        cache
    }

    fn web_key() -> ObjectKey {
        ObjectKey::new("Service", "default", "web")
    }

    fn reconcile(objects: Vec<Object>) -> Action {
        EndpointsController.reconcile(
            &web_key(),
            &cache_of(objects),
            std::time::SystemTime::UNIX_EPOCH,
        )
    }

    fn create(subsets: Vec<EndpointSubset>) -> Action {
        Action::with(vec![Command::Create(Box::new(Object::Endpoints(
            endpoints(subsets),
        )))])
    }

    #[test]
    fn endpoints_list_ready_and_not_ready_pods_by_the_ports_they_resolve() {
        let named = port("http", 80, IntOrString::String("http".into()));
        let numbered = port("metrics", 9100, IntOrString::Int(9100));
        let mut terminating = pod("terminating", "10.0.0.9", true, 8080);
        terminating.metadata.deletion_timestamp = Some(Default::default());
        let mut finished = pod("finished", "10.0.0.8", false, 8080);
        finished.status.phase = "Succeeded".into();
        let mut other = pod("other", "10.0.0.7", true, 8080);
        other.metadata.labels.insert("app".into(), "db".into());
        let no_ip = pod("no-ip", "", true, 8080);
        let mut sidecar = pod("sidecar", "10.0.0.6", true, 0);
        let mut proxy = sidecar.spec.containers.remove(0);
        proxy.ports[0].container_port = 8443;
        proxy.restart_policy = Some("Always".into());
        sidecar.spec.init_containers.push(proxy);
        let mut udp = pod("udp", "10.0.0.5", true, 0);
        udp.spec.containers[0].ports[0].protocol = "UDP".into();
        let mut publishing = service(vec![named.clone()]);
        publishing.spec.publish_not_ready_addresses = true;
        // (case, service, pods, subsets)
        let cases = [
            (
                "ready and not ready pods share the ports they resolve alike",
                service(vec![named.clone()]),
                vec![
                    pod("b", "10.0.0.2", true, 8080),
                    pod("a", "10.0.0.1", true, 8080),
                    pod("c", "10.0.0.3", false, 8080),
                ],
                vec![subset(
                    vec![address("a", "10.0.0.1"), address("b", "10.0.0.2")],
                    vec![address("c", "10.0.0.3")],
                    vec![endpoint_port("http", 8080)],
                )],
            ),
            (
                "a name resolved to different numbers splits the subsets",
                service(vec![named.clone(), numbered]),
                vec![
                    pod("a", "10.0.0.1", true, 8080),
                    pod("b", "10.0.0.2", true, 9090),
                ],
                vec![
                    subset(
                        vec![address("a", "10.0.0.1")],
                        vec![],
                        vec![endpoint_port("http", 8080)],
                    ),
                    subset(
                        vec![address("a", "10.0.0.1"), address("b", "10.0.0.2")],
                        vec![],
                        vec![endpoint_port("metrics", 9100)],
                    ),
                    subset(
                        vec![address("b", "10.0.0.2")],
                        vec![],
                        vec![endpoint_port("http", 9090)],
                    ),
                ],
            ),
            (
                "terminal, terminating, unselected and IP-less pods are left out; \
                 sidecar ports count; a name of another protocol does not",
                service(vec![named.clone()]),
                vec![terminating.clone(), finished, other, no_ip, sidecar, udp],
                vec![subset(
                    vec![address("sidecar", "10.0.0.6")],
                    vec![],
                    vec![endpoint_port("http", 8443)],
                )],
            ),
            (
                "publishNotReadyAddresses lists every pod as ready, terminating ones too",
                publishing,
                vec![pod("c", "10.0.0.3", false, 8080), terminating],
                vec![subset(
                    vec![address("c", "10.0.0.3"), address("terminating", "10.0.0.9")],
                    vec![],
                    vec![endpoint_port("http", 8080)],
                )],
            ),
            ("no pods: no subsets", service(vec![named]), vec![], vec![]),
        ];
        for (case, svc, pods, subsets) in cases {
            let mut objects = vec![Object::Service(svc)];
            objects.extend(pods.into_iter().map(Object::Pod));
            assert_eq!(reconcile(objects), create(subsets), "{case}");
        }
    }

    #[test]
    fn a_headless_service_without_ports_lists_addresses_alone_and_is_labelled() {
        let mut svc = service(vec![]);
        svc.spec.cluster_ip = "None".into();
        let mut named = pod("a", "10.0.0.1", true, 8080);
        named.spec.hostname = "a".into();
        named.spec.subdomain = "web".into();
        let mut expected = endpoints(vec![subset(
            vec![EndpointAddress {
                hostname: "a".into(),
                ..address("a", "10.0.0.1")
            }],
            vec![],
            vec![],
        )]);
        expected
            .metadata
            .labels
            .insert(HEADLESS_LABEL.into(), String::new());
        assert_eq!(
            reconcile(vec![Object::Service(svc), Object::Pod(named)]),
            Action::with(vec![Command::Create(Box::new(Object::Endpoints(expected)))])
        );
    }

    #[test]
    fn endpoints_are_updated_from_the_cached_object_only_when_they_differ() {
        let svc = service(vec![port("http", 80, IntOrString::Int(8080))]);
        let current = |subsets| {
            let mut ep = endpoints(subsets);
            ep.metadata.uid = "ep-uid".into();
            ep.metadata.resource_version = "42".into();
            ep.metadata
                .annotations
                .insert("kept".into(), "as found".into());
            ep
        };
        let ready = vec![subset(
            vec![address("a", "10.0.0.1")],
            vec![],
            vec![endpoint_port("http", 8080)],
        )];
        let objects = |ep: Endpoints| {
            vec![
                Object::Service(svc.clone()),
                Object::Pod(pod("a", "10.0.0.1", true, 8080)),
                Object::Endpoints(ep),
            ]
        };
        assert_eq!(
            reconcile(objects(current(ready.clone()))),
            Action::await_change()
        );
        let stale = current(vec![]);
        let mut updated = stale.clone();
        updated.subsets = ready;
        assert_eq!(
            reconcile(objects(stale)),
            Action::with(vec![Command::Update(Box::new(Object::Endpoints(updated)))])
        );
    }

    #[test]
    fn selector_less_and_external_name_services_keep_their_endpoints() {
        let mut manual = service(vec![port("http", 80, IntOrString::Int(8080))]);
        manual.spec.selector.clear();
        let mut alias = service(vec![]);
        alias.spec.type_ = "ExternalName".into();
        for svc in [manual, alias] {
            let objects = vec![
                Object::Service(svc),
                Object::Pod(pod("a", "10.0.0.1", true, 8080)),
                Object::Endpoints(endpoints(vec![])),
            ];
            assert_eq!(reconcile(objects), Action::await_change());
        }
    }

    #[test]
    fn a_deleted_service_takes_its_endpoints_along() {
        let mut ep = endpoints(vec![]);
        ep.metadata.uid = "ep-uid".into();
        assert_eq!(
            reconcile(vec![Object::Endpoints(ep)]),
            Action::with(vec![Command::Delete {
                key: ObjectKey::new("Endpoints", "default", "web"),
                uid: Some("ep-uid".into()),
                propagation: Propagation::Background,
            }])
        );
        assert_eq!(reconcile(vec![]), Action::await_change());
    }

    #[test]
    fn more_than_a_thousand_addresses_are_truncated_ready_ones_first() {
        let many = |n: usize, offset: usize| -> Vec<EndpointAddress> {
            (0..n)
                .map(|i| {
                    address(
                        &format!("p{}", i + offset),
                        &format!("10.1.0.{}", i + offset),
                    )
                })
                .collect()
        };
        // (ready per subset, not ready per subset) → kept
        let cases = [
            (vec![(600, 0), (300, 200)], vec![(600, 0), (300, 100)]),
            (vec![(900, 100), (300, 0)], vec![(750, 0), (250, 0)]),
            (vec![(500, 500)], vec![(500, 500)]),
        ];
        for (sizes, kept) in cases {
            let subsets: Vec<_> = sizes
                .iter()
                .enumerate()
                .map(|(i, (r, n))| {
                    subset(many(*r, i * 10_000), many(*n, i * 10_000 + 5_000), vec![])
                })
                .collect();
            let total: usize = sizes.iter().map(|(r, n)| r + n).sum();
            let (cut, truncated) = truncate(subsets);
            let got: Vec<_> = cut
                .iter()
                .map(|s| (s.addresses.len(), s.not_ready_addresses.len()))
                .collect();
            assert_eq!(got, kept, "{sizes:?}");
            assert_eq!(truncated, total > MAX_CAPACITY, "{sizes:?}");
        }
    }

    #[test]
    fn pods_queue_the_services_that_select_or_list_them() {
        let selecting = service(vec![]);
        let mut listing = service(vec![]);
        listing.metadata.name = "old".into();
        listing.spec.selector = [("app".to_owned(), "old".to_owned())].into();
        let mut listed = endpoints(vec![subset(vec![address("a", "10.0.0.1")], vec![], vec![])]);
        listed.metadata.name = "old".into();
        let mut unrelated = service(vec![]);
        unrelated.metadata.name = "db".into();
        unrelated.spec.selector = [("app".to_owned(), "db".to_owned())].into();
        let mut manual = service(vec![]);
        manual.metadata.name = "manual".into();
        manual.spec.selector.clear();
        let mut manual_ep = endpoints(vec![]);
        manual_ep.metadata.name = "manual".into();
        let cache = cache_of([
            Object::Service(selecting),
            Object::Service(listing),
            Object::Service(unrelated),
            Object::Service(manual),
            Object::Endpoints(listed),
            Object::Endpoints(manual_ep.clone()),
        ]);
        let cases = [
            (
                Object::Pod(pod("a", "10.0.0.1", true, 80)),
                vec![ObjectKey::new("Service", "default", "old"), web_key()],
            ),
            (Object::Pod(pod("b", "10.0.0.2", true, 80)), vec![web_key()]),
            (Object::Endpoints(endpoints(vec![])), vec![web_key()]),
            (Object::Endpoints(manual_ep), vec![]),
        ];
        for (object, keys) in cases {
            assert_eq!(
                EndpointsController.keys_for(&object, &cache),
                keys,
                "{object:?}"
            );
        }
    }
}
