//! What lists and watches select on, read out of an object's JSON value.
//!
//! At write time the store extracts the labels and `spec.nodeName` into
//! indexed columns ([`Indexed`]); at read time [`Selection`] decides whether
//! an object matches a label and a field selector, reading `metadata.name`
//! and `metadata.namespace` from its key, labels and `spec.nodeName` from the
//! columns, and any other field (`status.phase`) from the JSON. A value that
//! is not a JSON object has no labels and no fields.

use std::collections::BTreeMap;

use flotilla_shared::selector::{FieldSelector, Selector};
use serde_json::Value;

/// The field with its own indexed column.
pub(super) const NODE_NAME: &str = "spec.nodeName";

/// The columns extracted from a value at write time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Indexed {
    /// `metadata.labels` as JSON text (keys sorted), `{}` when there are none.
    pub(super) labels: String,
    /// `spec.nodeName`, empty when unset (a missing field reads as empty in
    /// a field selector, so `spec.nodeName=` finds unscheduled pods).
    pub(super) node_name: String,
}

/// The parts of an object [`Indexed`] reads; serde skips the rest without
/// building it (a whole pod as a `serde_json::Value` costs several times
/// more, on every replica for every write).
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(default)]
    metadata: Option<ProbeMetadata>,
    #[serde(default)]
    spec: Option<ProbeSpec>,
}

#[derive(serde::Deserialize)]
struct ProbeMetadata {
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
}

#[derive(serde::Deserialize)]
struct ProbeSpec {
    #[serde(default, rename = "nodeName")]
    node_name: Option<Value>,
}

impl Indexed {
    pub(super) fn of(value: &[u8]) -> Self {
        // The quick reading, for the shapes objects have; anything else
        // (a field of another type, a repeated key) the general one below.
        if let Ok(probe) = serde_json::from_slice::<Probe>(value) {
            let labels: BTreeMap<String, String> = probe
                .metadata
                .and_then(|m| m.labels)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(v) => Some((k, v)),
                    _ => None,
                })
                .collect();
            return Indexed {
                labels: serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into()),
                node_name: probe
                    .spec
                    .and_then(|s| s.node_name)
                    .and_then(|v| scalar(&v))
                    .unwrap_or_default(),
            };
        }
        Indexed::of_value(value)
    }

    fn of_value(value: &[u8]) -> Self {
        let json = serde_json::from_slice::<Value>(value).ok();
        let labels = json.as_ref().map(labels_of).unwrap_or_default();
        let node_name = json
            .as_ref()
            .and_then(|json| field_of(json, NODE_NAME))
            .unwrap_or_default();
        Indexed {
            labels: serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into()),
            node_name,
        }
    }
}

/// `metadata.labels` of a JSON object; entries whose value is not a string
/// are not labels.
fn labels_of(json: &Value) -> BTreeMap<String, String> {
    json.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads labels back from their column.
pub(super) fn parse_labels(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The value at a dotted path (`status.phase`) as a field selector compares
/// it: strings as they are, booleans and numbers as JSON writes them, and
/// anything else (absent, null, an object, a list) as missing.
pub(super) fn field_of(json: &Value, path: &str) -> Option<String> {
    let mut at = json;
    for part in path.split('.') {
        at = at.as_object()?.get(part)?;
    }
    scalar(at)
}

/// A JSON value as a field selector compares it (see [`field_of`]).
fn scalar(at: &Value) -> Option<String> {
    match at {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A label and a field selector, as a list or a watch applies them.
#[derive(Debug, Clone, Default)]
pub(super) struct Selection<'a> {
    pub(super) labels: Option<&'a Selector>,
    pub(super) fields: Option<&'a FieldSelector>,
}

/// One object as a [`Selection`] sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate<'a> {
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
    pub(super) value: &'a [u8],
    /// The labels column, when the caller has it (else read from `value`).
    pub(super) labels: Option<&'a str>,
    /// The node name column, when the caller has it (else read from `value`).
    pub(super) node_name: Option<&'a str>,
}

impl<'a> Selection<'a> {
    pub(super) fn new(labels: &'a Selector, fields: &'a FieldSelector) -> Self {
        Selection {
            labels: (!labels.is_everything()).then_some(labels),
            fields: (!fields.is_everything()).then_some(fields),
        }
    }

    /// Whether every object matches (no JSON needs to be read).
    pub(super) fn is_everything(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub(super) fn matches(&self, object: Candidate<'_>) -> bool {
        if self.is_everything() {
            return true;
        }
        // Parsed at most once, and only when a column does not answer.
        let json = std::cell::OnceCell::new();
        let json = || {
            json.get_or_init(|| serde_json::from_slice::<Value>(object.value).unwrap_or_default())
        };
        if let Some(selector) = self.labels {
            let labels = match object.labels {
                Some(text) => parse_labels(text),
                None => labels_of(json()),
            };
            if !selector.matches(&labels) {
                return false;
            }
        }
        if let Some(selector) = self.fields {
            return selector.matches(|field| match field {
                "metadata.name" => Some(object.name.to_owned()),
                "metadata.namespace" => Some(object.namespace.to_owned()),
                NODE_NAME => match object.node_name {
                    Some(node) => Some(node.to_owned()),
                    None => field_of(json(), NODE_NAME),
                },
                other => field_of(json(), other),
            });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_reading_agrees_with_the_general_one() {
        let values = [
            r#"{"metadata":{"labels":{"app":"web","n":1,"b":true}},"spec":{"nodeName":"n1","containers":[{"name":"c"}]}}"#,
            r#"{"metadata":{},"spec":{}}"#,
            r#"{"metadata":{"labels":null},"spec":{"nodeName":null}}"#,
            r#"{"spec":{"nodeName":7}}"#,
            r#"{"spec":{"nodeName":true}}"#,
            r#"{"spec":{"nodeName":{"a":1}}}"#,
            r#"{"metadata":"odd","spec":{"nodeName":"n"}}"#,
            r#"{"metadata":{"labels":["a"]},"spec":"odd"}"#,
            r#"{"metadata":{"labels":{"a":"1"}},"metadata":{"labels":{"a":"2"}}}"#,
            r#"{"spec":{"nodeName":"a","nodeName":"b"}}"#,
            r#"[1,2]"#,
            r#"not json"#,
            r#"{}"#,
        ];
        for value in values {
            assert_eq!(
                Indexed::of(value.as_bytes()),
                Indexed::of_value(value.as_bytes()),
                "{value}"
            );
        }
    }

    #[test]
    fn indexed_columns_come_from_labels_and_node_name() {
        // (value, labels column, node name column)
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"metadata":{"name":"a","labels":{"b":"2","a":"1"}},"spec":{"nodeName":"n1"}}"#,
                r#"{"a":"1","b":"2"}"#,
                "n1",
            ),
            (r#"{"metadata":{"name":"a"}}"#, "{}", ""),
            (
                r#"{"metadata":{"labels":{"ok":"x","num":3,"nil":null}}}"#,
                r#"{"ok":"x"}"#,
                "",
            ),
            (r#"{"spec":{"nodeName":7}}"#, "{}", "7"),
            (r#"["not", "an", "object"]"#, "{}", ""),
            ("not json at all", "{}", ""),
            ("", "{}", ""),
        ];
        for (value, labels, node) in cases {
            assert_eq!(
                Indexed::of(value.as_bytes()),
                Indexed {
                    labels: (*labels).into(),
                    node_name: (*node).into()
                },
                "{value}"
            );
        }
    }

    #[test]
    fn field_of_reads_dotted_paths_as_selectors_compare_them() {
        let json: Value = serde_json::from_str(
            r#"{"status":{"phase":"Running","ready":true,"count":3,"none":null,"obj":{}}}"#,
        )
        .unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            ("status.phase", Some("Running")),
            ("status.ready", Some("true")),
            ("status.count", Some("3")),
            ("status.none", None),
            ("status.obj", None),
            ("status.missing", None),
            ("status.phase.deeper", None),
            ("spec.nodeName", None),
        ];
        for (path, expected) in cases {
            assert_eq!(field_of(&json, path).as_deref(), *expected, "{path}");
        }
    }

    #[test]
    fn selection_reads_columns_key_and_json() {
        let value = br#"{"metadata":{"labels":{"app":"web"}},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}"#;
        let indexed = Indexed::of(value);
        let with_columns = Candidate {
            namespace: "default",
            name: "web-0",
            value,
            labels: Some(&indexed.labels),
            node_name: Some(&indexed.node_name),
        };
        let from_json = Candidate {
            labels: None,
            node_name: None,
            ..with_columns
        };
        // (label selector, field selector, matches)
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("app=web", "", true),
            ("app=db", "", false),
            ("!app", "", false),
            ("", "spec.nodeName=n1", true),
            ("", "spec.nodeName=n2", false),
            ("", "spec.nodeName!=n2", true),
            ("", "metadata.name=web-0,metadata.namespace=default", true),
            ("", "metadata.namespace=other", false),
            ("", "status.phase=Running", true),
            ("", "status.phase=Pending", false),
            ("", "status.podIP=", true),
            ("app=web", "status.phase=Pending", false),
        ];
        for (labels, fields, expected) in cases {
            let labels = Selector::parse(labels).unwrap();
            let fields = FieldSelector::parse(fields).unwrap();
            let selection = Selection::new(&labels, &fields);
            assert_eq!(
                selection.matches(with_columns),
                *expected,
                "{labels} {fields}"
            );
            assert_eq!(selection.matches(from_json), *expected, "{labels} {fields}");
        }
    }

    #[test]
    fn a_value_that_is_not_json_has_no_labels_or_fields() {
        let candidate = Candidate {
            namespace: "ns",
            name: "x",
            value: b"\x00\x01 raw bytes",
            labels: None,
            node_name: None,
        };
        let everything = Selector::everything();
        let no_fields = FieldSelector::everything();
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("!app", "", true),
            ("app", "", false),
            ("", "spec.nodeName=", true),
            ("", "status.phase=Running", false),
            ("", "metadata.name=x", true),
        ];
        assert!(Selection::new(&everything, &no_fields).matches(candidate));
        for (labels, fields, expected) in cases {
            let labels = Selector::parse(labels).unwrap();
            let fields = FieldSelector::parse(fields).unwrap();
            assert_eq!(
                Selection::new(&labels, &fields).matches(candidate),
                *expected,
                "{labels} {fields}"
            );
        }
    }
}
