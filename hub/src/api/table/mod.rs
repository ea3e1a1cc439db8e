//! Server-side printing: the `meta.k8s.io/v1` `Table` kube-apiserver sends
//! when a client asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`,
//! which is how `kubectl get` (plain, `-o wide`, `all`, `-w`) gets its columns.
//!
//! The columns and cells mirror `kubernetes/pkg/printers/internalversion/printers.go`
//! (`AddHandlers` and the `print*` functions), generated as the API server
//! does it (`pkg/printers/storage`): always with the wide columns, which
//! kubectl hides unless `-o wide` because their priority is 1. Role and
//! ClusterRole have no printer there, so they get the default convertor's
//! NAME and CREATED AT (`apiserver/pkg/registry/rest/table.go`). Ages and
//! durations read as `duration.HumanDuration` writes them, measured against
//! the `now` the caller passes.
//!
//! ```
//! use std::time::SystemTime;
//! use flotilla_hub::api::table::{IncludeObject, table};
//! use flotilla_shared::model::{ConfigMap, KindInfo, Object};
//!
//! let mut config = ConfigMap::default();
//! config.metadata.name = "settings".into();
//! let info = KindInfo::find("v1", "ConfigMap").unwrap();
//! let printed = table(info, &[Object::from(config)], IncludeObject::None, SystemTime::now());
//! assert_eq!(printed["columnDefinitions"][0]["name"], "Name");
//! assert_eq!(printed["rows"][0]["cells"][0], "settings");
//! ```

mod columns;
mod core;
mod format;
mod pod;
mod workloads;

use std::time::SystemTime;

use flotilla_shared::model::{KindInfo, Object};
use serde_json::{Map, Value, json};

pub use columns::{Column, columns};

/// Which object each row carries: the `includeObject` query parameter.
/// kubectl asks for `Metadata` unless it needs the whole object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IncludeObject {
    /// No `object` in the rows.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// The parameter's value as Kubernetes spells it (`None`, `Metadata`,
    /// `Object`); `None` (the Rust one) for anything else.
    pub fn parse(value: &str) -> Option<IncludeObject> {
        match value {
            "None" => Some(IncludeObject::None),
            "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// One row before it becomes JSON: cells in column order, and the
/// `TableRowCondition`s (only finished pods have one).
#[derive(Clone, Debug, PartialEq)]
struct Row {
    cells: Vec<Value>,
    conditions: Vec<Value>,
}

impl Row {
    fn new(cells: Vec<Value>) -> Row {
        Row {
            cells,
            conditions: Vec::new(),
        }
    }
}

/// The cells `object`'s row holds, in the order of [`columns`] of its kind.
pub fn cells(object: &Object, now: SystemTime) -> Vec<Value> {
    row(object, now).cells
}

fn row(object: &Object, now: SystemTime) -> Row {
    match object {
        Object::Pod(pod) => pod::row(pod, now),
        Object::ReplicaSet(rs) => workloads::replica_set(rs, now),
        Object::Deployment(deploy) => workloads::deployment(deploy, now),
        Object::DaemonSet(ds) => workloads::daemon_set(ds, now),
        Object::Job(job) => workloads::job(job, now),
        Object::Namespace(ns) => core::namespace(ns, now),
        Object::Node(node) => core::node(node, now),
        Object::Service(svc) => core::service(svc, now),
        Object::Endpoints(ep) => core::endpoints(ep, now),
        Object::ConfigMap(cm) => core::config_map(cm, now),
        Object::Secret(secret) => core::secret(secret, now),
        Object::Event(event) => core::event(event, now),
        Object::Lease(lease) => core::lease(lease, now),
        Object::RoleBinding(b) => core::binding(&b.metadata, &b.role_ref, &b.subjects, now),
        Object::ClusterRoleBinding(b) => core::binding(&b.metadata, &b.role_ref, &b.subjects, now),
        Object::Role(role) => core::default(&role.metadata),
        Object::ClusterRole(role) => core::default(&role.metadata),
    }
}

/// A `meta.k8s.io/v1` `Table` of `objects`, all of kind `info`:
/// `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{},"columnDefinitions":[...],"rows":[...]}`.
///
/// Each row is `{"cells":[...],"object":...}` (plus `"conditions"` for a
/// finished pod); `include` decides `object`: a `PartialObjectMetadata`
/// holding the object's metadata, the whole object, or no key at all. The
/// caller fills in `metadata` (`resourceVersion`, `continue`) and, for
/// `?noHeaders`, drops `columnDefinitions`.
pub fn table(
    info: &KindInfo,
    objects: &[Object],
    include: IncludeObject,
    now: SystemTime,
) -> Value {
    let column_definitions: Vec<Value> = columns(info)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let Row { cells, conditions } = row(object, now);
            let mut entry = Map::new();
            entry.insert("cells".to_owned(), Value::Array(cells));
            if !conditions.is_empty() {
                entry.insert("conditions".to_owned(), Value::Array(conditions));
            }
            if let Some(embedded) = embedded_object(object, include) {
                entry.insert("object".to_owned(), embedded);
            }
            Value::Object(entry)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

/// What a row carries as `object` for `include`.
fn embedded_object(object: &Object, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(object.to_value()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            // ObjectMeta has string keys only: encoding it cannot fail.
            "metadata": serde_json::to_value(object.metadata()).unwrap_or_default(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::{
        ClusterRole, ClusterRoleBinding, ConfigMap, DaemonSet, Deployment, Endpoints, Event, Job,
        KINDS, Lease, Namespace, Node, Pod, ReplicaSet, Role, RoleBinding, Secret, Service, Time,
    };

    use super::*;
    use crate::api::time::parse_time;

    fn now() -> SystemTime {
        parse_time("2026-11-21T12:00:00Z").expect("valid")
    }

    fn info(kind: &str) -> &'static KindInfo {
        KINDS
            .iter()
            .find(|info| info.kind == kind)
            .unwrap_or_else(|| panic!("{kind} is not a kind"))
    }

    #[test]
    fn include_object_parses_the_three_kubernetes_values_only() {
        let cases = [
            ("None", Some(IncludeObject::None)),
            ("Metadata", Some(IncludeObject::Metadata)),
            ("Object", Some(IncludeObject::Object)),
            ("object", None),
            ("", None),
            ("All", None),
        ];
        for (value, want) in cases {
            assert_eq!(IncludeObject::parse(value), want, "{value:?}");
        }
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
    }

    #[test]
    fn every_kind_has_kubernetes_columns_and_priorities() {
        // (kind, [(column, priority)]) as kube-apiserver 1.33 sends them.
        let cases: &[(&str, &[(&str, i32)])] = &[
            ("Namespace", &[("Name", 0), ("Status", 0), ("Age", 0)]),
            (
                "Node",
                &[
                    ("Name", 0),
                    ("Status", 0),
                    ("Roles", 0),
                    ("Age", 0),
                    ("Version", 0),
                    ("Internal-IP", 1),
                    ("External-IP", 1),
                    ("OS-Image", 1),
                    ("Kernel-Version", 1),
                    ("Container-Runtime", 1),
                ],
            ),
            (
                "Pod",
                &[
                    ("Name", 0),
                    ("Ready", 0),
                    ("Status", 0),
                    ("Restarts", 0),
                    ("Age", 0),
                    ("IP", 1),
                    ("Node", 1),
                    ("Nominated Node", 1),
                    ("Readiness Gates", 1),
                ],
            ),
            (
                "ReplicaSet",
                &[
                    ("Name", 0),
                    ("Desired", 0),
                    ("Current", 0),
                    ("Ready", 0),
                    ("Age", 0),
                    ("Containers", 1),
                    ("Images", 1),
                    ("Selector", 1),
                ],
            ),
            (
                "Deployment",
                &[
                    ("Name", 0),
                    ("Ready", 0),
                    ("Up-to-date", 0),
                    ("Available", 0),
                    ("Age", 0),
                    ("Containers", 1),
                    ("Images", 1),
                    ("Selector", 1),
                ],
            ),
            (
                "DaemonSet",
                &[
                    ("Name", 0),
                    ("Desired", 0),
                    ("Current", 0),
                    ("Ready", 0),
                    ("Up-to-date", 0),
                    ("Available", 0),
                    ("Node Selector", 0),
                    ("Age", 0),
                    ("Containers", 1),
                    ("Images", 1),
                    ("Selector", 1),
                ],
            ),
            (
                "Job",
                &[
                    ("Name", 0),
                    ("Status", 0),
                    ("Completions", 0),
                    ("Duration", 0),
                    ("Age", 0),
                    ("Containers", 1),
                    ("Images", 1),
                    ("Selector", 1),
                ],
            ),
            (
                "Service",
                &[
                    ("Name", 0),
                    ("Type", 0),
                    ("Cluster-IP", 0),
                    ("External-IP", 0),
                    ("Port(s)", 0),
                    ("Age", 0),
                    ("Selector", 1),
                ],
            ),
            ("Endpoints", &[("Name", 0), ("Endpoints", 0), ("Age", 0)]),
            ("ConfigMap", &[("Name", 0), ("Data", 0), ("Age", 0)]),
            (
                "Secret",
                &[("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)],
            ),
            (
                "Event",
                &[
                    ("Last Seen", 0),
                    ("Type", 0),
                    ("Reason", 0),
                    ("Object", 0),
                    ("Subobject", 1),
                    ("Source", 1),
                    ("Message", 0),
                    ("First Seen", 1),
                    ("Count", 1),
                    ("Name", 1),
                ],
            ),
            ("Lease", &[("Name", 0), ("Holder", 0), ("Age", 0)]),
            ("Role", &[("Name", 0), ("Created At", 0)]),
            ("ClusterRole", &[("Name", 0), ("Created At", 0)]),
            (
                "RoleBinding",
                &[
                    ("Name", 0),
                    ("Role", 0),
                    ("Age", 0),
                    ("Users", 1),
                    ("Groups", 1),
                    ("ServiceAccounts", 1),
                ],
            ),
            (
                "ClusterRoleBinding",
                &[
                    ("Name", 0),
                    ("Role", 0),
                    ("Age", 0),
                    ("Users", 1),
                    ("Groups", 1),
                    ("ServiceAccounts", 1),
                ],
            ),
        ];
        assert_eq!(cases.len(), KINDS.len(), "a kind has no expected columns");
        for (kind, want) in cases {
            let got: Vec<(&str, i32)> = columns(info(kind))
                .iter()
                .map(|c| (c.name, c.priority))
                .collect();
            assert_eq!(got, *want, "{kind}");
        }
    }

    #[test]
    fn only_name_columns_have_the_name_format_and_types_are_kubernetes_ones() {
        for kind in KINDS {
            for column in columns(kind) {
                assert_eq!(
                    column.format == "name",
                    column.name == "Name",
                    "{} {}",
                    kind.kind,
                    column.name
                );
                assert!(
                    matches!(column.type_, "string" | "integer" | "date"),
                    "{} {}: {}",
                    kind.kind,
                    column.name,
                    column.type_
                );
                assert!(
                    !column.description.is_empty(),
                    "{} {}",
                    kind.kind,
                    column.name
                );
            }
        }
        let restarts = &columns(info("Pod"))[3];
        assert_eq!((restarts.name, restarts.type_), ("Restarts", "string"));
        assert_eq!(columns(info("Role"))[1].type_, "date");
        assert_eq!(columns(info("ReplicaSet"))[1].type_, "integer");
    }

    fn default_objects() -> Vec<Object> {
        vec![
            Namespace::default().into(),
            Node::default().into(),
            Pod::default().into(),
            ReplicaSet::default().into(),
            Deployment::default().into(),
            DaemonSet::default().into(),
            Job::default().into(),
            Service::default().into(),
            Endpoints::default().into(),
            ConfigMap::default().into(),
            Secret::default().into(),
            Event::default().into(),
            Lease::default().into(),
            Role::default().into(),
            ClusterRole::default().into(),
            RoleBinding::default().into(),
            ClusterRoleBinding::default().into(),
        ]
    }

    #[test]
    fn every_kind_prints_one_cell_per_column() {
        let objects = default_objects();
        assert_eq!(objects.len(), KINDS.len());
        for object in &objects {
            let info = object.kind_info();
            assert_eq!(
                cells(object, now()).len(),
                columns(info).len(),
                "{}",
                info.kind
            );
        }
    }

    #[test]
    fn cell_types_match_what_kubernetes_sends() {
        // Counts are JSON integers, everything else strings.
        let mut secret = Secret::default();
        secret.metadata.name = "s".into();
        let printed = cells(&secret.into(), now());
        assert!(printed[0].is_string() && printed[1].is_string());
        assert!(printed[2].is_u64(), "{printed:?}");
        let printed = cells(&ReplicaSet::default().into(), now());
        assert!(printed[1..4].iter().all(Value::is_i64), "{printed:?}");
    }

    fn config_map(name: &str) -> Object {
        let mut cm = ConfigMap::default();
        cm.metadata.name = name.into();
        cm.metadata.namespace = "edge".into();
        cm.metadata.uid = "0d5c3b7a".into();
        cm.metadata.resource_version = "42".into();
        cm.metadata.creation_timestamp = Some(Time("2026-11-21T11:55:00Z".into()));
        cm.metadata.labels = [("app".to_owned(), "web".to_owned())].into();
        cm.data = [("k".to_owned(), "v".to_owned())].into();
        cm.into()
    }

    #[test]
    fn table_has_the_kubernetes_shape() {
        let objects = [config_map("a"), config_map("b")];
        let printed = table(info("ConfigMap"), &objects, IncludeObject::None, now());
        assert_eq!(printed["kind"], "Table");
        assert_eq!(printed["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(printed["metadata"], json!({}));
        assert_eq!(
            printed["columnDefinitions"][0],
            json!({
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": columns(info("ConfigMap"))[0].description,
                "priority": 0,
            })
        );
        assert_eq!(printed["columnDefinitions"][1]["format"], "");
        assert_eq!(
            printed["rows"],
            json!([{"cells": ["a", 1, "5m"]}, {"cells": ["b", 1, "5m"]}])
        );
    }

    #[test]
    fn include_object_decides_what_each_row_carries() {
        let object = config_map("a");
        let metadata = serde_json::to_value(object.metadata()).expect("encodes");
        let cases = [
            (IncludeObject::None, None),
            (
                IncludeObject::Metadata,
                Some(json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata,
                })),
            ),
            (IncludeObject::Object, Some(object.to_value())),
        ];
        for (include, want) in cases {
            let printed = table(
                info("ConfigMap"),
                std::slice::from_ref(&object),
                include,
                now(),
            );
            let row = printed["rows"][0].as_object().expect("row object");
            assert_eq!(row.get("object").cloned(), want, "{include:?}");
        }
        let printed = table(info("ConfigMap"), &[object], IncludeObject::Metadata, now());
        let embedded = &printed["rows"][0]["object"]["metadata"];
        assert_eq!(embedded["name"], "a");
        assert_eq!(embedded["namespace"], "edge");
        assert_eq!(embedded["resourceVersion"], "42");
        assert_eq!(embedded["labels"]["app"], "web");
    }

    #[test]
    fn finished_pods_carry_row_conditions_in_the_table() {
        let mut pod = Pod::default();
        pod.metadata.name = "done".into();
        pod.status.phase = "Succeeded".into();
        let printed = table(info("Pod"), &[pod.into()], IncludeObject::None, now());
        assert_eq!(
            printed["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
        );
    }

    #[test]
    fn an_empty_list_still_has_its_columns() {
        let printed = table(info("Pod"), &[], IncludeObject::Metadata, now());
        assert_eq!(printed["rows"], json!([]));
        assert_eq!(
            printed["columnDefinitions"].as_array().map(Vec::len),
            Some(9)
        );
    }
}
