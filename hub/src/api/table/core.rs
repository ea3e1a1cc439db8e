//! Rows of the core, coordination and RBAC kinds: `printService`,
//! `printEndpoints`, `printNode`, `printNamespace`, `printConfigMap`,
//! `printSecret`, `printEvent`, `printLease`, `printRoleBinding` and
//! `printClusterRoleBinding` in printers.go, and the default convertor
//! (`rest.NewDefaultTableConvertor`) for the kinds printers.go leaves out.

use std::collections::BTreeSet;
use std::time::SystemTime;

use flotilla_shared::model::{
    ConfigMap, Endpoints, Event, Lease, Namespace, Node, ObjectMeta, RoleRef, Secret, Service,
    Subject, condition_status, node_address_type, node_condition,
};
use serde_json::json;

use super::Row;
use super::format::{labels, since_text};
use crate::api::time::{age, format_time, parse_time};

/// Node role labels: `node-role.kubernetes.io/<role>` (any value) and
/// `kubernetes.io/role=<role>`.
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

/// Endpoints and lists show at most this many entries, then `+ N more...`.
const MAX_ENDPOINTS: usize = 3;

pub fn namespace(ns: &Namespace, now: SystemTime) -> Row {
    Row::new(vec![
        json!(ns.metadata.name),
        json!(ns.status.phase),
        json!(age(ns.metadata.creation_timestamp.as_ref(), now)),
    ])
}

pub fn node(node: &Node, now: SystemTime) -> Row {
    let mut status = vec![match node.status.condition(node_condition::READY) {
        Some(ready) if ready.status == condition_status::TRUE => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.spec.unschedulable {
        status.push("SchedulingDisabled");
    }
    let roles: BTreeSet<&str> = node
        .metadata
        .labels
        .iter()
        .filter_map(|(key, value)| match key.strip_prefix(NODE_ROLE_PREFIX) {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None => (key == NODE_ROLE_LABEL && !value.is_empty()).then_some(value.as_str()),
        })
        .collect();
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let address = |type_: &str| {
        node.status
            .addresses
            .iter()
            .find(|a| a.type_ == type_)
            .map_or_else(|| "<none>".to_owned(), |a| a.address.clone())
    };
    let info = &node.status.node_info;
    let or_unknown = |value: &str| {
        if value.is_empty() {
            "<unknown>".to_owned()
        } else {
            value.to_owned()
        }
    };
    Row::new(vec![
        json!(node.metadata.name),
        json!(status.join(",")),
        json!(roles),
        json!(age(node.metadata.creation_timestamp.as_ref(), now)),
        json!(info.kubelet_version),
        json!(address(node_address_type::INTERNAL_IP)),
        json!(address(node_address_type::EXTERNAL_IP)),
        json!(or_unknown(&info.os_image)),
        json!(or_unknown(&info.kernel_version)),
        json!(or_unknown(&info.container_runtime_version)),
    ])
}

pub fn service(svc: &Service, now: SystemTime) -> Row {
    let spec = &svc.spec;
    // Kubernetes' internal type always carries `clusterIPs`; a service
    // stored with only `clusterIP` shows that.
    let cluster_ip = spec
        .cluster_ips
        .first()
        .or(Some(&spec.cluster_ip).filter(|ip| !ip.is_empty()))
        .map_or("<none>", String::as_str);
    let ports = spec
        .ports
        .iter()
        .map(|p| match p.node_port {
            0 => format!("{}/{}", p.port, p.protocol),
            node_port => format!("{}:{node_port}/{}", p.port, p.protocol),
        })
        .collect::<Vec<_>>()
        .join(",");
    Row::new(vec![
        json!(svc.metadata.name),
        json!(spec.type_),
        json!(cluster_ip),
        json!(external_ip(svc)),
        json!(if ports.is_empty() { "<none>" } else { &ports }),
        json!(age(svc.metadata.creation_timestamp.as_ref(), now)),
        json!(labels(&spec.selector)),
    ])
}

/// `getServiceExternalIP` for wide output (the API server always prints wide).
fn external_ip(svc: &Service) -> String {
    let external_ips = &svc.spec.external_ips;
    match svc.spec.type_.as_str() {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = svc
                .status
                .load_balancer
                .ingress
                .iter()
                .filter_map(|i| {
                    [&i.ip, &i.hostname]
                        .into_iter()
                        .find(|s| !s.is_empty())
                        .map(String::as_str)
                })
                .collect();
            let all: Vec<&str> = ingress
                .into_iter()
                .chain(external_ips.iter().map(String::as_str))
                .collect();
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => svc.spec.external_name.clone(),
        _ => "<unknown>".to_owned(),
    }
}

pub fn endpoints(ep: &Endpoints, now: SystemTime) -> Row {
    Row::new(vec![
        json!(ep.metadata.name),
        json!(format_endpoints(ep)),
        json!(age(ep.metadata.creation_timestamp.as_ref(), now)),
    ])
}

/// `formatEndpoints`: the first three ready `ip:port` pairs (or bare IPs
/// for a subset without ports), then `+ N more...`.
fn format_endpoints(ep: &Endpoints) -> String {
    if ep.subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut shown = Vec::new();
    let mut count = 0;
    for subset in &ep.subsets {
        if subset.ports.is_empty() {
            count += subset.addresses.len();
            shown.extend(subset.addresses.iter().map(|a| a.ip.clone()));
        } else {
            for port in &subset.ports {
                count += subset.addresses.len();
                shown.extend(
                    subset
                        .addresses
                        .iter()
                        .map(|a| join_host_port(&a.ip, port.port)),
                );
            }
        }
    }
    let more = shown.len() > MAX_ENDPOINTS;
    shown.truncate(MAX_ENDPOINTS);
    let list = shown.join(",");
    if more {
        format!("{list} + {} more...", count - MAX_ENDPOINTS)
    } else {
        list
    }
}

/// `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub fn config_map(cm: &ConfigMap, now: SystemTime) -> Row {
    Row::new(vec![
        json!(cm.metadata.name),
        json!(cm.data.len() + cm.binary_data.len()),
        json!(age(cm.metadata.creation_timestamp.as_ref(), now)),
    ])
}

pub fn secret(secret: &Secret, now: SystemTime) -> Row {
    Row::new(vec![
        json!(secret.metadata.name),
        json!(secret.type_),
        json!(secret.data.len()),
        json!(age(secret.metadata.creation_timestamp.as_ref(), now)),
    ])
}

pub fn event(event: &Event, now: SystemTime) -> Row {
    let first_seen = match &event.first_timestamp {
        Some(first) => since_text(Some(&first.0), now),
        None => since_text(event.event_time.as_ref().map(|t| t.0.as_str()), now),
    };
    let mut last_seen = match &event.last_timestamp {
        Some(last) => since_text(Some(&last.0), now),
        None => first_seen.clone(),
    };
    let mut count = event.count;
    if let Some(series) = &event.series {
        last_seen = since_text(
            series.last_observed_time.as_ref().map(|t| t.0.as_str()),
            now,
        );
        count = series.count;
    } else if count == 0 {
        // Singleton events of the events.k8s.io API carry no count.
        count = 1;
    }
    let involved = &event.involved_object;
    let kind = involved.kind.to_lowercase();
    let object = if involved.name.is_empty() {
        kind
    } else {
        format!("{kind}/{}", involved.name)
    };
    let component = first_non_empty(&event.source.component, &event.reporting_component);
    let instance = first_non_empty(&event.source.host, &event.reporting_instance);
    let source = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    Row::new(vec![
        json!(last_seen),
        json!(event.type_),
        json!(event.reason),
        json!(object),
        json!(involved.field_path),
        json!(source),
        json!(event.message.trim()),
        json!(first_seen),
        json!(count),
        json!(event.metadata.name),
    ])
}

fn first_non_empty<'a>(first: &'a str, second: &'a str) -> &'a str {
    if first.is_empty() { second } else { first }
}

pub fn lease(lease: &Lease, now: SystemTime) -> Row {
    Row::new(vec![
        json!(lease.metadata.name),
        json!(lease.spec.holder_identity.as_deref().unwrap_or_default()),
        json!(age(lease.metadata.creation_timestamp.as_ref(), now)),
    ])
}

/// A RoleBinding's or ClusterRoleBinding's row: the role, then its
/// subjects sorted into users, groups and service accounts (`rbac.SubjectsStrings`).
pub fn binding(
    metadata: &ObjectMeta,
    role_ref: &RoleRef,
    subjects: &[Subject],
    now: SystemTime,
) -> Row {
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in subjects {
        match subject.kind.as_str() {
            "User" => users.push(subject.name.clone()),
            "Group" => groups.push(subject.name.clone()),
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{}", subject.namespace, subject.name))
            }
            _ => {}
        }
    }
    Row::new(vec![
        json!(metadata.name),
        json!(format!("{}/{}", role_ref.kind, role_ref.name)),
        json!(age(metadata.creation_timestamp.as_ref(), now)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(service_accounts.join(", ")),
    ])
}

/// The default convertor's row: the name and the creation time in RFC 3339
/// (Go's zero time when there is none).
pub fn default(metadata: &ObjectMeta) -> Row {
    let created = metadata.creation_timestamp.as_ref().map_or_else(
        || "0001-01-01T00:00:00Z".to_owned(),
        |t| parse_time(&t.0).map_or_else(|| t.0.clone(), |at| format_time(at).0),
    );
    Row::new(vec![json!(metadata.name), json!(created)])
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{
        EndpointAddress, EndpointPort, EndpointSubset, EventSeries, LoadBalancerIngress, MicroTime,
        NodeAddress, NodeCondition, ObjectReference, ServicePort, Time,
    };
    use serde_json::Value;

    use super::*;

    fn now() -> SystemTime {
        parse_time("2026-11-21T12:00:00Z").expect("valid")
    }

    fn time(text: &str) -> Option<Time> {
        Some(Time(text.to_owned()))
    }

    fn meta(name: &str, created: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            creation_timestamp: time(created),
            ..ObjectMeta::default()
        }
    }

    fn cells(row: Row) -> Value {
        Value::Array(row.cells)
    }

    #[test]
    fn namespace_cells_show_the_phase() {
        let mut ns = Namespace {
            metadata: meta("edge", "2026-11-14T12:00:00Z"),
            ..Namespace::default()
        };
        ns.status.phase = "Terminating".into();
        assert_eq!(
            cells(namespace(&ns, now())),
            json!(["edge", "Terminating", "7d"])
        );
    }

    fn ready_node(name: &str) -> Node {
        let mut node = Node {
            metadata: meta(name, "2026-10-22T12:00:00Z"),
            ..Node::default()
        };
        node.status.conditions = vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..NodeCondition::default()
        }];
        node.status.node_info.kubelet_version = "v1.33.0-flotilla".into();
        node
    }

    #[test]
    fn node_cells_match_kubectl() {
        let ready = ready_node("pi-1");

        let mut cordoned_not_ready = ready_node("pi-2");
        cordoned_not_ready.status.conditions[0].status = "Unknown".into();
        cordoned_not_ready.spec.unschedulable = true;
        cordoned_not_ready.metadata.labels = [
            ("node-role.kubernetes.io/gateway".to_owned(), String::new()),
            ("node-role.kubernetes.io/".to_owned(), "ignored".to_owned()),
            ("kubernetes.io/role".to_owned(), "edge".to_owned()),
            ("kubernetes.io/arch".to_owned(), "arm64".to_owned()),
        ]
        .into();
        cordoned_not_ready.status.addresses = vec![
            NodeAddress {
                type_: "Hostname".into(),
                address: "pi-2".into(),
            },
            NodeAddress {
                type_: "InternalIP".into(),
                address: "192.168.1.12".into(),
            },
            NodeAddress {
                type_: "ExternalIP".into(),
                address: "203.0.113.12".into(),
            },
        ];
        let info = &mut cordoned_not_ready.status.node_info;
        info.os_image = "Debian GNU/Linux 12 (bookworm)".into();
        info.kernel_version = "6.6.51+rpt-rpi-v8".into();
        info.container_runtime_version = "crun://1.19".into();

        let mut unknown = ready_node("pi-3");
        unknown.status.conditions.clear();

        let cases: &[(&Node, Value)] = &[
            (
                &ready,
                json!([
                    "pi-1",
                    "Ready",
                    "<none>",
                    "30d",
                    "v1.33.0-flotilla",
                    "<none>",
                    "<none>",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>"
                ]),
            ),
            (
                &cordoned_not_ready,
                json!([
                    "pi-2",
                    "NotReady,SchedulingDisabled",
                    "edge,gateway",
                    "30d",
                    "v1.33.0-flotilla",
                    "192.168.1.12",
                    "203.0.113.12",
                    "Debian GNU/Linux 12 (bookworm)",
                    "6.6.51+rpt-rpi-v8",
                    "crun://1.19"
                ]),
            ),
            (
                &unknown,
                json!([
                    "pi-3",
                    "Unknown",
                    "<none>",
                    "30d",
                    "v1.33.0-flotilla",
                    "<none>",
                    "<none>",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>"
                ]),
            ),
        ];
        for (n, want) in cases {
            assert_eq!(cells(node(n, now())), *want, "{}", n.metadata.name);
        }
    }

    fn svc(type_: &str, ports: &[(i32, i32)]) -> Service {
        let mut svc = Service {
            metadata: meta("web", "2026-11-21T11:59:15Z"),
            ..Service::default()
        };
        svc.spec.type_ = type_.into();
        svc.spec.cluster_ip = "10.43.0.10".into();
        svc.spec.cluster_ips = vec!["10.43.0.10".into()];
        svc.spec.selector = [("app".to_owned(), "web".to_owned())].into();
        svc.spec.ports = ports
            .iter()
            .map(|&(port, node_port)| ServicePort {
                port,
                node_port,
                protocol: "TCP".into(),
                ..ServicePort::default()
            })
            .collect();
        svc
    }

    #[test]
    fn service_cells_match_kubectl() {
        let cluster_ip = svc("ClusterIP", &[(80, 0)]);
        let node_port = svc("NodePort", &[(80, 30080), (443, 30443)]);

        let mut external = svc("ClusterIP", &[(80, 0)]);
        external.spec.external_ips = vec!["198.51.100.1".into(), "198.51.100.2".into()];

        let mut headless = svc("ClusterIP", &[]);
        headless.spec.cluster_ip = "None".into();
        headless.spec.cluster_ips = vec!["None".into()];
        headless.spec.selector.clear();

        let mut only_cluster_ip = svc("ClusterIP", &[(53, 0)]);
        only_cluster_ip.spec.cluster_ips.clear();
        only_cluster_ip.spec.ports[0].protocol = "UDP".into();

        let pending_lb = svc("LoadBalancer", &[(80, 31000)]);
        let mut lb = svc("LoadBalancer", &[(80, 31000)]);
        lb.status.load_balancer.ingress = vec![
            LoadBalancerIngress {
                ip: "203.0.113.9".into(),
                ..LoadBalancerIngress::default()
            },
            LoadBalancerIngress {
                hostname: "lb.example.com".into(),
                ..LoadBalancerIngress::default()
            },
            LoadBalancerIngress {
                ip: "203.0.113.9".into(),
                ..LoadBalancerIngress::default()
            },
        ];
        lb.spec.external_ips = vec!["198.51.100.1".into()];

        let mut external_name = svc("ExternalName", &[]);
        external_name.spec.external_name = "db.example.com".into();
        external_name.spec.cluster_ip.clear();
        external_name.spec.cluster_ips.clear();

        let untyped = svc("", &[(80, 0)]);

        let cases: &[(&Service, Value)] = &[
            (
                &cluster_ip,
                json!([
                    "web",
                    "ClusterIP",
                    "10.43.0.10",
                    "<none>",
                    "80/TCP",
                    "45s",
                    "app=web"
                ]),
            ),
            (
                &node_port,
                json!([
                    "web",
                    "NodePort",
                    "10.43.0.10",
                    "<none>",
                    "80:30080/TCP,443:30443/TCP",
                    "45s",
                    "app=web"
                ]),
            ),
            (
                &external,
                json!([
                    "web",
                    "ClusterIP",
                    "10.43.0.10",
                    "198.51.100.1,198.51.100.2",
                    "80/TCP",
                    "45s",
                    "app=web"
                ]),
            ),
            (
                &headless,
                json!([
                    "web",
                    "ClusterIP",
                    "None",
                    "<none>",
                    "<none>",
                    "45s",
                    "<none>"
                ]),
            ),
            (
                &only_cluster_ip,
                json!([
                    "web",
                    "ClusterIP",
                    "10.43.0.10",
                    "<none>",
                    "53/UDP",
                    "45s",
                    "app=web"
                ]),
            ),
            (
                &pending_lb,
                json!([
                    "web",
                    "LoadBalancer",
                    "10.43.0.10",
                    "<pending>",
                    "80:31000/TCP",
                    "45s",
                    "app=web"
                ]),
            ),
            (
                &lb,
                json!([
                    "web",
                    "LoadBalancer",
                    "10.43.0.10",
                    "203.0.113.9,lb.example.com,198.51.100.1",
                    "80:31000/TCP",
                    "45s",
                    "app=web"
                ]),
            ),
            (
                &external_name,
                json!([
                    "web",
                    "ExternalName",
                    "<none>",
                    "db.example.com",
                    "<none>",
                    "45s",
                    "app=web"
                ]),
            ),
            (
                &untyped,
                json!([
                    "web",
                    "",
                    "10.43.0.10",
                    "<unknown>",
                    "80/TCP",
                    "45s",
                    "app=web"
                ]),
            ),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            assert_eq!(cells(service(s, now())), *want, "case {i}");
        }
    }

    fn subset(ips: &[&str], ports: &[i32]) -> EndpointSubset {
        EndpointSubset {
            addresses: ips
                .iter()
                .map(|ip| EndpointAddress {
                    ip: ip.to_string(),
                    ..EndpointAddress::default()
                })
                .collect(),
            ports: ports
                .iter()
                .map(|&port| EndpointPort {
                    port,
                    ..EndpointPort::default()
                })
                .collect(),
            ..EndpointSubset::default()
        }
    }

    #[test]
    fn endpoints_show_three_addresses_then_a_count() {
        let cases: &[(Vec<EndpointSubset>, &str)] = &[
            (vec![], "<none>"),
            (vec![subset(&[], &[80])], ""),
            (vec![subset(&["10.42.0.7"], &[8080])], "10.42.0.7:8080"),
            (vec![subset(&["fd00::7"], &[8080])], "[fd00::7]:8080"),
            (
                vec![subset(&["10.42.0.7", "10.42.0.8"], &[])],
                "10.42.0.7,10.42.0.8",
            ),
            (
                vec![
                    subset(&["10.42.0.7", "10.42.0.8"], &[80, 443]),
                    subset(&["10.42.1.2"], &[80]),
                ],
                "10.42.0.7:80,10.42.0.8:80,10.42.0.7:443 + 2 more...",
            ),
        ];
        for (subsets, want) in cases {
            let mut ep = Endpoints {
                metadata: meta("web", "2026-11-21T11:00:00Z"),
                ..Endpoints::default()
            };
            ep.subsets = subsets.clone();
            assert_eq!(
                cells(endpoints(&ep, now())),
                json!(["web", want, "60m"]),
                "{want}"
            );
        }
    }

    #[test]
    fn config_maps_and_secrets_count_their_keys() {
        let mut cm = ConfigMap {
            metadata: meta("settings", "2026-11-21T11:00:00Z"),
            ..ConfigMap::default()
        };
        cm.data = [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]
        .into();
        cm.binary_data = [(
            "blob".to_owned(),
            flotilla_shared::model::ByteString(vec![0, 1]),
        )]
        .into();
        assert_eq!(cells(config_map(&cm, now())), json!(["settings", 3, "60m"]));

        let mut s = Secret {
            metadata: meta("creds", "2026-11-21T11:00:00Z"),
            ..Secret::default()
        };
        s.type_ = "kubernetes.io/tls".into();
        s.data = [
            (
                "tls.crt".to_owned(),
                flotilla_shared::model::ByteString(vec![1]),
            ),
            (
                "tls.key".to_owned(),
                flotilla_shared::model::ByteString(vec![2]),
            ),
        ]
        .into();
        assert_eq!(
            cells(secret(&s, now())),
            json!(["creds", "kubernetes.io/tls", 2, "60m"])
        );
    }

    #[test]
    fn event_cells_match_kubectl() {
        let mut core = Event {
            metadata: meta("web.1872a", "2026-11-21T11:00:00Z"),
            ..Event::default()
        };
        core.type_ = "Warning".into();
        core.reason = "BackOff".into();
        core.message = "Back-off restarting failed container\n".into();
        core.involved_object = ObjectReference {
            kind: "Pod".into(),
            name: "web".into(),
            field_path: "spec.containers{web}".into(),
            ..ObjectReference::default()
        };
        core.source.component = "kubelet".into();
        core.source.host = "pi-1".into();
        core.first_timestamp = time("2026-11-21T11:00:00Z");
        core.last_timestamp = time("2026-11-21T11:58:00Z");
        core.count = 12;

        let mut new_api = Event {
            metadata: meta("web.1872b", "2026-11-21T11:59:00Z"),
            ..Event::default()
        };
        new_api.type_ = "Normal".into();
        new_api.reason = "Scheduled".into();
        new_api.involved_object.kind = "Pod".into();
        new_api.involved_object.name = "web".into();
        new_api.event_time = Some(MicroTime("2026-11-21T11:58:59.876543Z".into()));
        new_api.reporting_component = "flotilla-scheduler".into();

        let mut series = new_api.clone();
        series.series = Some(EventSeries {
            count: 4,
            last_observed_time: Some(MicroTime("2026-11-21T11:59:49.999999Z".into())),
        });
        series.reporting_instance = "hub-1".into();

        let mut kind_only = Event::default();
        kind_only.involved_object.kind = "Node".into();
        kind_only.first_timestamp = time("2026-11-21T11:59:58Z");

        let cases: &[(&Event, Value)] = &[
            (
                &core,
                json!([
                    "2m",
                    "Warning",
                    "BackOff",
                    "pod/web",
                    "spec.containers{web}",
                    "kubelet, pi-1",
                    "Back-off restarting failed container",
                    "60m",
                    12,
                    "web.1872a"
                ]),
            ),
            (
                &new_api,
                json!([
                    "60s",
                    "Normal",
                    "Scheduled",
                    "pod/web",
                    "",
                    "flotilla-scheduler",
                    "",
                    "60s",
                    1,
                    "web.1872b"
                ]),
            ),
            (
                &series,
                json!([
                    "10s",
                    "Normal",
                    "Scheduled",
                    "pod/web",
                    "",
                    "flotilla-scheduler, hub-1",
                    "",
                    "60s",
                    4,
                    "web.1872b"
                ]),
            ),
            (
                &kind_only,
                json!(["2s", "", "", "node", "", "", "", "2s", 1, ""]),
            ),
        ];
        for (i, (e, want)) in cases.iter().enumerate() {
            assert_eq!(cells(event(e, now())), *want, "case {i}");
        }
    }

    #[test]
    fn lease_cells_show_the_holder() {
        let mut l = Lease {
            metadata: meta("pi-1", "2026-11-21T11:00:00Z"),
            ..Lease::default()
        };
        assert_eq!(cells(lease(&l, now())), json!(["pi-1", "", "60m"]));
        l.spec.holder_identity = Some("pi-1".into());
        assert_eq!(cells(lease(&l, now())), json!(["pi-1", "pi-1", "60m"]));
    }

    #[test]
    fn bindings_sort_subjects_by_kind() {
        let subject = |kind: &str, namespace: &str, name: &str| Subject {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Subject::default()
        };
        let role_ref = RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "view".into(),
        };
        let subjects = [
            subject("User", "", "alice"),
            subject("Group", "", "ops"),
            subject("ServiceAccount", "edge", "gateway"),
            subject("User", "", "bob"),
            subject("Group", "", "system:nodes"),
        ];
        assert_eq!(
            cells(binding(
                &meta("viewers", "2026-11-21T11:00:00Z"),
                &role_ref,
                &subjects,
                now()
            )),
            json!([
                "viewers",
                "ClusterRole/view",
                "60m",
                "alice, bob",
                "ops, system:nodes",
                "edge/gateway"
            ])
        );
        assert_eq!(
            cells(binding(
                &meta("empty", "2026-11-21T11:00:00Z"),
                &role_ref,
                &[],
                now()
            )),
            json!(["empty", "ClusterRole/view", "60m", "", "", ""])
        );
    }

    #[test]
    fn kinds_without_a_printer_show_name_and_creation_time() {
        assert_eq!(
            cells(default(&meta("reader", "2026-11-21T11:00:00Z"))),
            json!(["reader", "2026-11-21T11:00:00Z"])
        );
        assert_eq!(
            cells(default(&ObjectMeta {
                name: "new".into(),
                ..ObjectMeta::default()
            })),
            json!(["new", "0001-01-01T00:00:00Z"])
        );
    }
}
