//! Service and Endpoints.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::meta::validate_labels;
use super::pod::PROTOCOLS;
use super::{ErrorList, FieldError, Path, names, validate_object_meta};
use crate::model::{Endpoints, IntOrString, Resource, Service};

/// Sorted, as Kubernetes lists them (`sets.List`).
pub const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
/// Sorted, as Kubernetes lists them (`sets.List`).
pub const SESSION_AFFINITIES: &[&str] = &["ClientIP", "None"];

pub fn validate_service(svc: &Service) -> ErrorList {
    let mut errors = validate_object_meta(&svc.metadata, Service::NAMESPACED, names::dns1035_label);
    let spec_path = Path::new("spec");
    let spec = &svc.spec;
    let kind = if spec.type_.is_empty() {
        "ClusterIP"
    } else {
        spec.type_.as_str()
    };
    if !SERVICE_TYPES.contains(&kind) {
        errors.push(FieldError::not_supported(
            &spec_path.child("type"),
            kind,
            SERVICE_TYPES,
        ));
    }
    let headless = spec.cluster_ip == "None";
    if kind == "ExternalName" {
        if spec.external_name.is_empty() {
            errors.push(FieldError::required(&spec_path.child("externalName"), ""));
        } else {
            for msg in names::dns1123_subdomain(spec.external_name.trim_end_matches('.')) {
                errors.push(FieldError::invalid(
                    &spec_path.child("externalName"),
                    &spec.external_name,
                    msg,
                ));
            }
        }
    } else if spec.ports.is_empty() && !headless {
        errors.push(FieldError::required(&spec_path.child("ports"), ""));
    }
    if !spec.cluster_ip.is_empty() && !headless && spec.cluster_ip.parse::<IpAddr>().is_err() {
        errors.push(FieldError::invalid(
            &spec_path.child("clusterIP"),
            &spec.cluster_ip,
            "must be empty, 'None', or a valid IP address",
        ));
    }
    let mut port_names = BTreeSet::new();
    let mut port_numbers = BTreeSet::new();
    let several = spec.ports.len() > 1;
    for (i, port) in spec.ports.iter().enumerate() {
        let at = spec_path.child("ports").index(i);
        if port.name.is_empty() {
            if several {
                errors.push(FieldError::required(&at.child("name"), ""));
            }
        } else {
            for msg in names::dns1123_label(&port.name) {
                errors.push(FieldError::invalid(&at.child("name"), &port.name, msg));
            }
            if !port_names.insert(port.name.as_str()) {
                errors.push(FieldError::duplicate(&at.child("name"), &port.name));
            }
        }
        for msg in names::port_number(port.port) {
            errors.push(FieldError::invalid_raw(&at.child("port"), port.port, msg));
        }
        let protocol = if port.protocol.is_empty() {
            "TCP"
        } else {
            port.protocol.as_str()
        };
        if !PROTOCOLS.contains(&protocol) {
            errors.push(FieldError::not_supported(
                &at.child("protocol"),
                protocol,
                PROTOCOLS,
            ));
        }
        if !port_numbers.insert((port.port, protocol)) {
            errors.push(FieldError::duplicate(
                &at,
                &format!("{}/{protocol}", port.port),
            ));
        }
        match &port.target_port {
            Some(IntOrString::Int(0)) | None => {}
            Some(IntOrString::Int(n)) => {
                for msg in names::port_number(*n) {
                    errors.push(FieldError::invalid_raw(&at.child("targetPort"), n, msg));
                }
            }
            Some(IntOrString::String(name)) => {
                for msg in names::port_name(name) {
                    errors.push(FieldError::invalid(&at.child("targetPort"), name, msg));
                }
            }
        }
        if port.node_port != 0 {
            if kind == "ClusterIP" || kind == "ExternalName" {
                errors.push(FieldError::forbidden(
                    &at.child("nodePort"),
                    format!("may not be used when `type` is '{kind}'"),
                ));
            } else {
                for msg in names::port_number(port.node_port) {
                    errors.push(FieldError::invalid_raw(
                        &at.child("nodePort"),
                        port.node_port,
                        msg,
                    ));
                }
            }
        }
    }
    errors.extend(validate_labels(
        &spec.selector,
        &spec_path.child("selector"),
    ));
    if !spec.session_affinity.is_empty()
        && !SESSION_AFFINITIES.contains(&spec.session_affinity.as_str())
    {
        errors.push(FieldError::not_supported(
            &spec_path.child("sessionAffinity"),
            &spec.session_affinity,
            SESSION_AFFINITIES,
        ));
    }
    if let Some(timeout) = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        && !(1..=86400).contains(&timeout)
    {
        let at = spec_path
            .child("sessionAffinityConfig")
            .child("clientIP")
            .child("timeoutSeconds");
        errors.push(FieldError::invalid_raw(
            &at,
            timeout,
            "must be greater than 0 and less than 86400",
        ));
    }
    for (i, ip) in spec.external_ips.iter().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            errors.push(FieldError::invalid(
                &spec_path.child("externalIPs").index(i),
                ip,
                "must be a valid IP address",
            ));
        }
    }
    errors
}

pub fn validate_endpoints(ep: &Endpoints) -> ErrorList {
    let mut errors = validate_object_meta(
        &ep.metadata,
        Endpoints::NAMESPACED,
        names::dns1123_subdomain,
    );
    for (i, subset) in ep.subsets.iter().enumerate() {
        let at = Path::new("subsets").index(i);
        for (field, addresses) in [
            ("addresses", &subset.addresses),
            ("notReadyAddresses", &subset.not_ready_addresses),
        ] {
            for (j, address) in addresses.iter().enumerate() {
                if address.ip.parse::<IpAddr>().is_err() {
                    errors.push(FieldError::invalid(
                        &at.child(field).index(j).child("ip"),
                        &address.ip,
                        "must be a valid IP address",
                    ));
                }
            }
        }
        let several = subset.ports.len() > 1;
        for (j, port) in subset.ports.iter().enumerate() {
            let pp = at.child("ports").index(j);
            if several && port.name.is_empty() {
                errors.push(FieldError::required(&pp.child("name"), ""));
            }
            for msg in names::port_number(port.port) {
                errors.push(FieldError::invalid_raw(&pp.child("port"), port.port, msg));
            }
            if !port.protocol.is_empty() && !PROTOCOLS.contains(&port.protocol.as_str()) {
                errors.push(FieldError::not_supported(
                    &pp.child("protocol"),
                    &port.protocol,
                    PROTOCOLS,
                ));
            }
        }
    }
    errors
}
