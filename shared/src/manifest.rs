//! Decoding manifests and API request bodies into [`Object`]s, in one place.
//!
//! Every entry point does the same four things, in Kubernetes' order:
//!
//! 1. parse the text (JSON, or YAML with the `yaml` feature), noting keys
//!    that appear twice in one mapping;
//! 2. drop every `null` map entry, recursively (Kubernetes treats `null` as absent);
//! 3. read `apiVersion` and `kind` and look the kind up in [`KINDS`](crate::model::KINDS);
//! 4. decode the typed kind, collecting every unknown field with its full
//!    path (`spec.template.spec.containers[0].imagee`) and reporting a type
//!    error with the path of the field that has it.
//!
//! What happens to unknown and duplicate fields is the caller's choice,
//! [`FieldValidation`], as with Kubernetes' `fieldValidation` query parameter.
//! Values are not checked here: that is validation's job.
//!
//! ```
//! use flotilla_shared::manifest::{decode_json, FieldValidation};
//! use flotilla_shared::model::Object;
//!
//! let body = br#"{"apiVersion": "v1", "kind": "ConfigMap",
//!                 "metadata": {"name": "game-demo"}, "data": {"lives": "3"}, "colour": "red"}"#;
//! let error = decode_json(body, FieldValidation::Strict).unwrap_err();
//! assert_eq!(error.to_string(), r#"ConfigMap "game-demo": strict decoding error: unknown field "colour""#);
//!
//! let decoded = decode_json(body, FieldValidation::Warn).unwrap();
//! assert_eq!(decoded.warnings, [r#"unknown field "colour""#]);
//! assert!(matches!(decoded.object, Object::ConfigMap(_)));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::model::{KindInfo, Object};

/// What to do with fields the model does not know and keys given twice,
/// mirroring Kubernetes' `fieldValidation` query parameter.
///
/// [`Strict`](FieldValidation::Strict) is the default: it is what kubectl
/// sends since 1.27 (`--validate=strict`), and a typo such as `imagee` should
/// fail loudly rather than be dropped. (A Kubernetes API server given no
/// parameter at all behaves as `Warn`; the API server chooses that itself by
/// passing `Warn` when the query has no `fieldValidation`.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Fail, naming every unknown and duplicate field at once.
    #[default]
    Strict,
    /// Succeed, returning one warning per unknown or duplicate field
    /// (Kubernetes sends them as `Warning` headers).
    Warn,
    /// Succeed and drop unknown fields silently.
    Ignore,
}

impl FromStr for FieldValidation {
    type Err = DecodeError;

    /// Parses the query parameter's value: `Strict`, `Warn` or `Ignore`, as Kubernetes spells them.
    fn from_str(value: &str) -> Result<Self, DecodeError> {
        match value {
            "Strict" => Ok(FieldValidation::Strict),
            "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(DecodeError::FieldValidation {
                value: other.to_owned(),
            }),
        }
    }
}

/// A decoded object and, under [`FieldValidation::Warn`], what was wrong with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub object: Object,
    /// Kubernetes' wording: `unknown field "spec.foo"`, `duplicate field "metadata.name"`.
    pub warnings: Vec<String>,
}

/// Why a manifest or request body could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("invalid JSON: {source}")]
    Json { source: serde_json::Error },
    #[cfg(feature = "yaml")]
    #[error("invalid YAML: {source}")]
    Yaml { source: serde_norway::Error },
    #[error("expected an object with apiVersion and kind, found {found}")]
    NotAnObject { found: &'static str },
    #[error("{field} must be a string, found {found}")]
    TypeMeta {
        field: &'static str,
        found: &'static str,
    },
    #[error("{kind} has no apiVersion")]
    MissingApiVersion { kind: String },
    /// `api_version` is empty when the object has neither.
    #[error("object has no kind{}", if api_version.is_empty() { String::new() } else { format!(" (apiVersion {api_version:?})") })]
    MissingKind { api_version: String },
    #[error("no kind {kind:?} is registered for version {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("{kind} holds a list of objects where one object was expected")]
    UnexpectedList { kind: String },
    #[error("{kind} has items that are not a list, found {found}")]
    ListItems { kind: String, found: &'static str },
    #[error("items[{index}]: {source}")]
    ListItem {
        index: usize,
        source: Box<DecodeError>,
    },
    /// A value of the wrong type (`replicas: three`), with the path of the field.
    #[error("{}: {path}: {message}", label(kind, name))]
    Field {
        kind: String,
        name: String,
        path: String,
        message: String,
    },
    /// Unknown or duplicate fields under [`FieldValidation::Strict`]; `problems`
    /// are in Kubernetes' wording (`unknown field "spec.foo"`).
    #[error("{}: strict decoding error: {}", label(kind, name), problems.join(", "))]
    Strict {
        kind: String,
        name: String,
        problems: Vec<String>,
    },
    /// A problem in one document of a multi-document YAML file, counted from 1.
    #[error("document {document}: {source}")]
    Document {
        document: usize,
        source: Box<DecodeError>,
    },
    #[error("invalid fieldValidation {value:?}: must be Strict, Warn or Ignore")]
    FieldValidation { value: String },
}

/// `Deployment "nginx"`, or `Deployment` when the object has no name yet.
fn label(kind: &str, name: &str) -> String {
    if name.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} {name:?}")
    }
}

/// Decodes one object from a JSON request body.
pub fn decode_json(bytes: &[u8], mode: FieldValidation) -> Result<Decoded, DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let mut duplicates = Vec::new();
    let value = ValueSeed {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value))
    .map_err(|source| DecodeError::Json { source })?;
    decode_with_duplicates(value, duplicates, mode)
}

/// Decodes one object from a JSON value. A `List` is an error here; use
/// [`decode_objects`] where lists are welcome.
pub fn decode_object(value: Value, mode: FieldValidation) -> Result<Decoded, DecodeError> {
    decode_with_duplicates(value, Vec::new(), mode)
}

/// Decodes a value that is either one object or a list of them (`kind: List`
/// as kubectl writes it, or a typed list such as `DeploymentList` whose items
/// may leave out their `apiVersion` and `kind`).
pub fn decode_objects(value: Value, mode: FieldValidation) -> Result<Vec<Decoded>, DecodeError> {
    decode_objects_with_duplicates(value, Vec::new(), mode)
}

/// Decodes a YAML file of one or more `---`-separated documents, flattening
/// lists and skipping empty documents. Errors name the document, counted from 1.
#[cfg(feature = "yaml")]
pub fn decode_yaml_documents(
    text: &str,
    mode: FieldValidation,
) -> Result<Vec<Decoded>, DecodeError> {
    let mut decoded = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let in_document = |source| DecodeError::Document {
            document: index + 1,
            source: Box::new(source),
        };
        let mut duplicates = Vec::new();
        let value = ValueSeed {
            path: String::new(),
            duplicates: &mut duplicates,
        }
        .deserialize(document)
        .map_err(|source| in_document(DecodeError::Yaml { source }))?;
        if value.is_null() {
            continue;
        }
        decoded
            .extend(decode_objects_with_duplicates(value, duplicates, mode).map_err(in_document)?);
    }
    Ok(decoded)
}

fn decode_objects_with_duplicates(
    mut value: Value,
    duplicates: Vec<String>,
    mode: FieldValidation,
) -> Result<Vec<Decoded>, DecodeError> {
    strip_nulls(&mut value);
    let Value::Object(map) = value else {
        return Err(DecodeError::NotAnObject {
            found: value_type(&value),
        });
    };
    match list_item_kind(&map) {
        Some(item_info) => decode_list(map, item_info, duplicates, mode),
        None => decode_with_duplicates(Value::Object(map), duplicates, mode)
            .map(|decoded| vec![decoded]),
    }
}

/// Decodes each item of a list on its own, as kubectl sends them. Duplicate
/// keys inside an item are reported against that item, relative to it.
fn decode_list(
    mut list: Map<String, Value>,
    item_info: Option<&'static KindInfo>,
    duplicates: Vec<String>,
    mode: FieldValidation,
) -> Result<Vec<Decoded>, DecodeError> {
    let kind = type_meta(&list, "kind")?.to_owned();
    let mut item_duplicates: Vec<Vec<String>> = Vec::new();
    let mut list_duplicates = Vec::new();
    for path in duplicates {
        match item_path(&path) {
            Some((index, rest)) => {
                if item_duplicates.len() <= index {
                    item_duplicates.resize_with(index + 1, Vec::new);
                }
                item_duplicates[index].push(rest);
            }
            None => list_duplicates.push(path),
        }
    }
    if !list_duplicates.is_empty() && mode == FieldValidation::Strict {
        let problems = duplicate_messages(&list_duplicates);
        return Err(DecodeError::Strict {
            kind,
            name: String::new(),
            problems,
        });
    }
    let items = match list.remove("items") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(DecodeError::ListItems {
                kind,
                found: value_type(&other),
            });
        }
    };
    let mut decoded = Vec::with_capacity(items.len());
    for (index, mut item) in items.into_iter().enumerate() {
        if let (Some(info), Value::Object(item_map)) = (item_info, &mut item) {
            item_map
                .entry("apiVersion")
                .or_insert_with(|| info.api_version.into());
            item_map.entry("kind").or_insert_with(|| info.kind.into());
        }
        let duplicates = item_duplicates
            .get_mut(index)
            .map(std::mem::take)
            .unwrap_or_default();
        let mut one = decode_with_duplicates(item, duplicates, mode).map_err(|source| {
            DecodeError::ListItem {
                index,
                source: Box::new(source),
            }
        })?;
        // Duplicate keys of the list itself have no item to belong to; they
        // travel with the first one.
        if index == 0 && mode == FieldValidation::Warn {
            one.warnings
                .splice(0..0, duplicate_messages(&list_duplicates));
        }
        decoded.push(one);
    }
    Ok(decoded)
}

/// `Some(None)` for `kind: List` (items carry their own type), `Some(Some(info))`
/// for a typed list such as `DeploymentList`, `None` for anything else.
fn list_item_kind(map: &Map<String, Value>) -> Option<Option<&'static KindInfo>> {
    let (Some(Value::String(api_version)), Some(Value::String(kind))) =
        (map.get("apiVersion"), map.get("kind"))
    else {
        return None;
    };
    if kind == "List" {
        return Some(None);
    }
    let item_kind = kind.strip_suffix("List")?;
    KindInfo::find(api_version, item_kind).map(Some)
}

/// Splits `items[3].spec.x` into `(3, "spec.x")`.
fn item_path(path: &str) -> Option<(usize, String)> {
    let rest = path.strip_prefix("items[")?;
    let (index, rest) = rest.split_once(']')?;
    Some((
        index.parse().ok()?,
        rest.strip_prefix('.').unwrap_or(rest).to_owned(),
    ))
}

fn decode_with_duplicates(
    mut value: Value,
    duplicates: Vec<String>,
    mode: FieldValidation,
) -> Result<Decoded, DecodeError> {
    strip_nulls(&mut value);
    let Value::Object(map) = &value else {
        return Err(DecodeError::NotAnObject {
            found: value_type(&value),
        });
    };
    let api_version = type_meta(map, "apiVersion")?;
    let kind = type_meta(map, "kind")?;
    if kind.is_empty() {
        return Err(DecodeError::MissingKind {
            api_version: api_version.to_owned(),
        });
    }
    if api_version.is_empty() {
        return Err(DecodeError::MissingApiVersion {
            kind: kind.to_owned(),
        });
    }
    if list_item_kind(map).is_some() {
        return Err(DecodeError::UnexpectedList {
            kind: kind.to_owned(),
        });
    }
    let info = KindInfo::find(api_version, kind).ok_or_else(|| DecodeError::UnknownKind {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
    })?;
    let name = map
        .get("metadata")
        .and_then(|metadata| {
            metadata
                .get("name")
                .or_else(|| metadata.get("generateName"))
        })
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
    let ignoring = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let object = Object::deserialize_kind(
        info,
        serde_path_to_error::Deserializer::new(ignoring, &mut track),
    )
    .map_err(|error| DecodeError::Field {
        kind: info.kind.to_owned(),
        name: name.clone(),
        path: error_path(&track.path()),
        message: error.to_string(),
    })?;

    let mut problems = duplicate_messages(&duplicates);
    problems.extend(unknown.iter().map(|path| format!("unknown field {path:?}")));
    match mode {
        FieldValidation::Strict if !problems.is_empty() => Err(DecodeError::Strict {
            kind: info.kind.to_owned(),
            name,
            problems,
        }),
        FieldValidation::Strict | FieldValidation::Ignore => Ok(Decoded {
            object,
            warnings: Vec::new(),
        }),
        FieldValidation::Warn => Ok(Decoded {
            object,
            warnings: problems,
        }),
    }
}

fn duplicate_messages(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|path| format!("duplicate field {path:?}"))
        .collect()
}

/// The string value of `apiVersion` or `kind`; empty when absent.
fn type_meta<'a>(map: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, DecodeError> {
    match map.get(field) {
        None => Ok(""),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(DecodeError::TypeMeta {
            field,
            found: value_type(other),
        }),
    }
}

fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Removes every map entry whose value is `null`, at any depth. Nulls inside
/// lists stay: dropping them would shift the indexes errors report.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, value| !value.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Appends a map key to a path in Kubernetes' notation.
fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn push_index(path: &mut String, index: usize) {
    path.push_str(&format!("[{index}]"));
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    fn build(path: &serde_ignored::Path<'_>, out: &mut String) {
        match path {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                build(parent, out);
                push_index(out, *index);
            }
            serde_ignored::Path::Map { parent, key } => {
                build(parent, out);
                push_key(out, key);
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => build(parent, out),
        }
    }
    let mut out = String::new();
    build(path, &mut out);
    out
}

fn error_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            serde_path_to_error::Segment::Seq { index } => push_index(&mut out, *index),
            serde_path_to_error::Segment::Map { key } => push_key(&mut out, key),
            serde_path_to_error::Segment::Enum { variant } => push_key(&mut out, variant),
            serde_path_to_error::Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    out
}

/// Builds a [`Value`] from any self-describing format, recording the path of
/// every key that appears twice in one mapping (the later value wins, as in
/// Kubernetes). YAML keys that are numbers or booleans become strings, as
/// Kubernetes' YAML-to-JSON conversion makes them.
struct ValueSeed<'a> {
    path: String,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // NaN and infinities have no JSON form; Kubernetes rejects them too.
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let mut path = self.path.clone();
            push_index(&mut path, items.len());
            match seq.next_element_seed(ValueSeed {
                path,
                duplicates: &mut *self.duplicates,
            })? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key_seed(KeySeed)? {
            let mut path = self.path.clone();
            push_key(&mut path, &key);
            let value = access.next_value_seed(ValueSeed {
                path: path.clone(),
                duplicates: &mut *self.duplicates,
            })?;
            if map.insert(key, value).is_some() {
                self.duplicates.push(path);
            }
        }
        Ok(Value::Object(map))
    }
}

/// A mapping key as a string.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string, number or boolean map key")
    }

    fn visit_bool<E>(self, value: bool) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_i64<E>(self, value: i64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_u64<E>(self, value: u64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_f64<E>(self, value: f64) -> Result<String, E> {
        Ok(value.to_string())
    }

    fn visit_str<E>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    fn visit_string<E>(self, value: String) -> Result<String, E> {
        Ok(value)
    }
}

// The manifests under test are YAML, so the tests need the (default) `yaml` feature.
#[cfg(all(test, feature = "yaml"))]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::model::{ConfigMap, Deployment, IntOrString, Service};

    /// Every field of `expected` is in `actual` with the same value; `actual`
    /// may add fields Kubernetes always writes (`status: {}`, `strategy: {}`).
    fn assert_subset(expected: &Value, actual: &Value, path: &str) {
        match (expected, actual) {
            (Value::Object(expected), Value::Object(actual)) => {
                for (key, value) in expected {
                    let inner = format!("{path}.{key}");
                    let other = actual
                        .get(key)
                        .unwrap_or_else(|| panic!("{inner} was lost"));
                    assert_subset(value, other, &inner);
                }
            }
            (Value::Array(expected), Value::Array(actual)) => {
                assert_eq!(expected.len(), actual.len(), "{path} changed length");
                for (index, (value, other)) in expected.iter().zip(actual).enumerate() {
                    assert_subset(value, other, &format!("{path}[{index}]"));
                }
            }
            _ => assert_eq!(expected, actual, "{path} changed"),
        }
    }

    /// Decodes every document of a manifest strictly, checks that
    /// re-encoding keeps every field it had and that decoding the re-encoded
    /// JSON gives the same object and the same JSON.
    fn round_trip(text: &str) -> Vec<Object> {
        let originals: Vec<Value> = serde_norway::Deserializer::from_str(text)
            .map(|document| Value::deserialize(document).expect("valid YAML"))
            .filter(|value| !value.is_null())
            .collect();
        let decoded =
            decode_yaml_documents(text, FieldValidation::Strict).expect("manifest decodes");
        assert_eq!(decoded.len(), originals.len());
        let mut objects = Vec::new();
        for (Decoded { object, warnings }, original) in decoded.into_iter().zip(originals) {
            assert!(warnings.is_empty(), "{warnings:?}");
            let encoded = object.to_value();
            assert_subset(&original, &encoded, "");
            let again = decode_object(encoded.clone(), FieldValidation::Strict)
                .expect("re-encoded object decodes");
            assert!(again.warnings.is_empty());
            assert_eq!(again.object.to_value(), encoded);
            assert_eq!(again.object, object);
            objects.push(object);
        }
        objects
    }

    fn one<T: TryFrom<Object, Error = Object>>(mut objects: Vec<Object>) -> T {
        assert_eq!(objects.len(), 1);
        let object = objects.remove(0);
        T::try_from(object).unwrap_or_else(|other| panic!("unexpected kind {}", other.kind()))
    }

    #[test]
    fn nginx_deployment_round_trips() {
        let deployment: Deployment = one(round_trip(include_str!(
            "../../tests/manifests/nginx-deployment.yaml"
        )));
        assert_eq!(deployment.metadata.name, "nginx-deployment");
        assert_eq!(deployment.spec.replicas, Some(3));
        let selector = deployment.spec.selector.expect("selector");
        assert_eq!(selector.match_labels["app"], "nginx");
        assert_eq!(deployment.spec.template.metadata.labels["app"], "nginx");
    }

    #[test]
    fn fluentd_daemonset_round_trips() {
        let daemon_set: crate::model::DaemonSet = one(round_trip(include_str!(
            "../../tests/manifests/fluentd-daemonset.yaml"
        )));
        assert_eq!(daemon_set.metadata.namespace, "kube-system");
        assert_eq!(daemon_set.metadata.labels["k8s-app"], "fluentd-logging");
        assert_eq!(
            daemon_set.spec.selector.expect("selector").match_labels["name"],
            "fluentd-elasticsearch"
        );
        assert_eq!(
            daemon_set.spec.template.metadata.labels["name"],
            "fluentd-elasticsearch"
        );
    }

    #[test]
    fn service_with_a_named_target_port_round_trips() {
        let objects = round_trip(include_str!("../../tests/manifests/nginx-service.yaml"));
        assert_eq!(
            objects.iter().map(Object::kind).collect::<Vec<_>>(),
            ["Pod", "Service"]
        );
        let service: Service = one(objects[1..].to_vec());
        assert_eq!(service.spec.selector["app.kubernetes.io/name"], "proxy");
        let port = &service.spec.ports[0];
        assert_eq!(
            (port.name.as_str(), port.protocol.as_str(), port.port),
            ("name-of-service-port", "TCP", 80)
        );
        assert_eq!(
            port.target_port,
            Some(IntOrString::String("http-web-svc".into()))
        );
    }

    #[test]
    fn configmap_keeps_multi_line_values_exactly() {
        let config_map: ConfigMap = one(round_trip(include_str!(
            "../../tests/manifests/game-demo-configmap.yaml"
        )));
        assert_eq!(config_map.data["player_initial_lives"], "3");
        assert_eq!(
            config_map.data["game.properties"],
            "enemy.types=aliens,monsters\nplayer.maximum-lives=5\n"
        );
        assert_eq!(
            config_map.data["user-interface.properties"],
            "color.good=purple\ncolor.bad=yellow\nallow.textmode=true\n"
        );
    }

    #[test]
    fn secret_keeps_data_and_string_data_apart_until_admission() {
        let mut secret: crate::model::Secret = one(round_trip(include_str!(
            "../../tests/manifests/mysecret.yaml"
        )));
        assert_eq!(secret.type_, "Opaque");
        assert_eq!(secret.data["username"].0, b"admin");
        assert_eq!(secret.string_data["username"], "administrator");
        secret.merge_string_data();
        assert_eq!(secret.data["username"].0, b"administrator");
        assert!(
            secret.data["config.yaml"]
                .0
                .starts_with(b"apiUrl: \"https://my.api.com/api/v1\"\n")
        );
    }

    #[test]
    fn pi_job_round_trips() {
        let job: crate::model::Job = one(round_trip(include_str!(
            "../../tests/manifests/pi-job.yaml"
        )));
        assert_eq!(job.metadata.name, "pi");
        assert_eq!(job.spec.backoff_limit, Some(4));
        assert_eq!(job.spec.completions, None);
    }

    #[test]
    fn role_and_role_binding_round_trip() {
        let objects = round_trip(include_str!("../../tests/manifests/pod-reader-rbac.yaml"));
        let role: crate::model::Role = one(objects[..1].to_vec());
        assert_eq!(role.rules[0].api_groups, [""]);
        assert_eq!(role.rules[0].resources, ["pods"]);
        assert_eq!(role.rules[0].verbs, ["get", "watch", "list"]);
        let binding: crate::model::RoleBinding = one(objects[1..].to_vec());
        assert_eq!(binding.subjects[0].kind, "User");
        assert_eq!(binding.subjects[0].name, "jane");
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(binding.role_ref.name, "pod-reader");
        assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
    }

    #[test]
    fn lease_keeps_microsecond_times() {
        let lease: crate::model::Lease = one(round_trip(include_str!(
            "../../tests/manifests/controller-manager-lease.yaml"
        )));
        assert_eq!(lease.spec.lease_duration_seconds, Some(15));
        assert_eq!(lease.spec.lease_transitions, Some(2));
        assert_eq!(
            lease.spec.renew_time.expect("renewTime").0,
            "2024-01-15T10:02:47.901234Z"
        );
        assert!(
            lease
                .spec
                .holder_identity
                .expect("holderIdentity")
                .starts_with("control-plane-1_")
        );
    }

    /// The unknown fields of `nginx-deployment-typos.yaml`, in document order.
    fn typo_fields() -> Vec<String> {
        [
            "metadata.lables",
            "spec.strategy.rollingUpdate.maxUnavaliable",
            "spec.template.spec.containers[0].imagePullPolice",
        ]
        .map(|path| format!("unknown field {path:?}"))
        .to_vec()
    }

    #[test]
    fn strict_reports_every_unknown_field_with_its_full_path() {
        let text = include_str!("../../tests/manifests/nginx-deployment-typos.yaml");
        let error = decode_yaml_documents(text, FieldValidation::Strict)
            .expect_err("typos are unknown fields");
        let DecodeError::Document {
            document: 1,
            source,
        } = &error
        else {
            panic!("{error:?}")
        };
        let DecodeError::Strict {
            kind,
            name,
            problems,
        } = source.as_ref()
        else {
            panic!("{error:?}")
        };
        assert_eq!(
            (kind.as_str(), name.as_str()),
            ("Deployment", "nginx-deployment")
        );
        assert_eq!(*problems, typo_fields());
        assert_eq!(
            error.to_string(),
            format!(
                "document 1: Deployment \"nginx-deployment\": strict decoding error: {}",
                typo_fields().join(", ")
            )
        );
    }

    #[test]
    fn warn_returns_unknown_fields_as_warnings_and_keeps_the_rest() {
        let text = include_str!("../../tests/manifests/nginx-deployment-typos.yaml");
        let decoded = decode_yaml_documents(text, FieldValidation::Warn)
            .expect("warn accepts unknown fields");
        assert_eq!(decoded[0].warnings, typo_fields());
        let deployment = Deployment::try_from(decoded[0].object.clone()).expect("a Deployment");
        assert!(deployment.metadata.labels.is_empty());
        let rolling = deployment
            .spec
            .strategy
            .rolling_update
            .expect("rollingUpdate");
        assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
        assert_eq!(rolling.max_unavailable, None);
    }

    #[test]
    fn ignore_drops_unknown_fields_silently() {
        let text = include_str!("../../tests/manifests/nginx-deployment-typos.yaml");
        let decoded = decode_yaml_documents(text, FieldValidation::Ignore)
            .expect("ignore accepts unknown fields");
        assert!(decoded[0].warnings.is_empty());
        assert_eq!(decoded[0].object.kind(), "Deployment");
    }

    #[test]
    fn unknown_fields_inside_lists_are_indexed() {
        let value = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}, {"port": 443, "nodeport": 30443}]},
        });
        let error =
            decode_object(value, FieldValidation::Strict).expect_err("nodeport is misspelled");
        assert_eq!(
            error.to_string(),
            r#"Service "web": strict decoding error: unknown field "spec.ports[1].nodeport""#
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let cases = [
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": "three"}}),
                "spec.replicas",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                       "spec": {"ports": [{"port": 80}, {"port": "https"}]}}),
                "spec.ports[1].port",
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": 1}}}),
                "metadata.labels.a",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "data": {"key": "not base64!"}}),
                "data.key",
            ),
        ];
        for (value, want_path) in cases {
            let error = decode_object(value, FieldValidation::Ignore).expect_err("wrong type");
            let DecodeError::Field { path, .. } = &error else {
                panic!("{error:?}")
            };
            assert_eq!(path, want_path, "{error}");
            assert!(
                error.to_string().contains(&format!(": {want_path}: ")),
                "{error}"
            );
        }
    }

    #[test]
    fn null_is_treated_as_absent() {
        let value = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": null, "annotations": {"a": null}},
            "spec": {"replicas": null, "strategy": null, "selector": {"matchLabels": {"app": "web"}}},
            "status": null,
        });
        let decoded =
            decode_object(value, FieldValidation::Strict).expect("nulls are absent fields");
        let deployment = Deployment::try_from(decoded.object).expect("a Deployment");
        assert_eq!(deployment.spec.replicas, None);
        assert!(
            deployment.metadata.labels.is_empty() && deployment.metadata.annotations.is_empty()
        );
        assert_eq!(
            deployment.spec.selector.expect("selector").match_labels["app"],
            "web"
        );

        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace:\ndata:\n";
        let decoded = decode_yaml_documents(yaml, FieldValidation::Strict)
            .expect("empty YAML values are null");
        assert!(decoded[0].object.metadata().namespace.is_empty());
    }

    #[test]
    fn missing_or_unknown_type_meta_is_a_clear_error() {
        let cases = [
            (
                json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
                r#"object has no kind (apiVersion "v1")"#,
            ),
            (json!({"metadata": {"name": "x"}}), "object has no kind"),
            (
                json!({"apiVersion": "v1", "kind": null}),
                r#"object has no kind (apiVersion "v1")"#,
            ),
            (json!({"kind": "ConfigMap"}), "ConfigMap has no apiVersion"),
            (
                json!({"apiVersion": "v1", "kind": 7}),
                "kind must be a string, found a number",
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet"}),
                r#"no kind "StatefulSet" is registered for version "apps/v1""#,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Deployment"}),
                r#"no kind "Deployment" is registered for version "v1""#,
            ),
            (
                json!({"apiVersion": "v1", "kind": "List", "items": []}),
                "List holds a list of objects where one object was expected",
            ),
            (
                json!(["apiVersion", "v1"]),
                "expected an object with apiVersion and kind, found a list",
            ),
        ];
        for (value, want) in cases {
            let error =
                decode_object(value.clone(), FieldValidation::Strict).expect_err("not decodable");
            assert_eq!(error.to_string(), want, "{value}");
        }
    }

    #[test]
    fn multi_document_yaml_skips_empty_documents_and_names_the_failing_one() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\n\
                    apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n";
        let decoded = decode_yaml_documents(text, FieldValidation::Strict).expect("two objects");
        let names: Vec<_> = decoded
            .iter()
            .map(|d| (d.object.kind(), d.object.metadata().name.as_str()))
            .collect();
        assert_eq!(names, [("Namespace", "a"), ("ConfigMap", "b")]);

        let bad_kind = format!("{text}---\napiVersion: v1\nkind: Widget\n");
        let error =
            decode_yaml_documents(&bad_kind, FieldValidation::Strict).expect_err("unknown kind");
        assert_eq!(
            error.to_string(),
            r#"document 5: no kind "Widget" is registered for version "v1""#
        );

        let bad_yaml = "apiVersion: v1\nkind: Namespace\n---\nmetadata: [unclosed\n";
        let error = decode_yaml_documents(bad_yaml, FieldValidation::Strict).expect_err("bad YAML");
        assert!(
            error.to_string().starts_with("document 2: invalid YAML: "),
            "{error}"
        );

        let scalar = "apiVersion: v1\nkind: Namespace\n---\njust text\n";
        let error =
            decode_yaml_documents(scalar, FieldValidation::Strict).expect_err("not an object");
        assert_eq!(
            error.to_string(),
            "document 2: expected an object with apiVersion and kind, found a string"
        );
    }

    #[test]
    fn lists_are_flattened_into_their_items() {
        let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: b}
---
apiVersion: v1
kind: ConfigMapList
metadata: {resourceVersion: "12"}
items:
- metadata: {name: c}
  data: {k: v}
---
apiVersion: v1
kind: List
items: []
"#;
        let decoded = decode_yaml_documents(text, FieldValidation::Strict).expect("lists decode");
        let names: Vec<_> = decoded
            .iter()
            .map(|d| (d.object.kind(), d.object.metadata().name.as_str()))
            .collect();
        assert_eq!(
            names,
            [("ConfigMap", "a"), ("Deployment", "b"), ("ConfigMap", "c")]
        );

        let typo = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n\
                    - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}, colour: red}\n";
        let error = decode_yaml_documents(typo, FieldValidation::Strict)
            .expect_err("unknown field in an item");
        assert_eq!(
            error.to_string(),
            r#"document 1: items[1]: ConfigMap "b": strict decoding error: unknown field "colour""#
        );
        let decoded = decode_objects(
            serde_norway::from_str(typo).expect("YAML"),
            FieldValidation::Warn,
        )
        .expect("warn");
        assert_eq!(decoded[1].warnings, [r#"unknown field "colour""#]);

        let error = decode_objects(
            json!({"apiVersion": "v1", "kind": "List", "items": {}}),
            FieldValidation::Strict,
        )
        .expect_err("items must be a list");
        assert_eq!(
            error.to_string(),
            "List has items that are not a list, found an object"
        );
    }

    #[test]
    fn duplicate_json_keys_are_strict_errors_and_warnings() {
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"},"data":{"k":"1","k":"2"}}"#;
        let error = decode_json(body, FieldValidation::Strict).expect_err("duplicates");
        assert_eq!(
            error.to_string(),
            r#"ConfigMap "b": strict decoding error: duplicate field "metadata.name", duplicate field "data.k""#
        );
        let decoded = decode_json(body, FieldValidation::Warn).expect("warn");
        assert_eq!(
            decoded.warnings,
            [
                r#"duplicate field "metadata.name""#,
                r#"duplicate field "data.k""#
            ]
        );
        let config_map = ConfigMap::try_from(decoded.object).expect("a ConfigMap");
        // The later value wins, as in Kubernetes.
        assert_eq!(
            (
                config_map.metadata.name.as_str(),
                config_map.data["k"].as_str()
            ),
            ("b", "2")
        );
        assert!(
            decode_json(body, FieldValidation::Ignore)
                .expect("ignore")
                .warnings
                .is_empty()
        );
    }

    #[test]
    fn duplicate_yaml_keys_in_list_items_are_reported_against_the_item() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n  metadata: {name: b}\n";
        let error =
            decode_yaml_documents(text, FieldValidation::Strict).expect_err("duplicate metadata");
        assert_eq!(
            error.to_string(),
            r#"document 1: items[0]: Namespace "b": strict decoding error: duplicate field "metadata""#
        );
    }

    #[test]
    fn yaml_number_and_boolean_keys_become_strings() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  80: http\n  true: yes\n";
        let decoded = decode_yaml_documents(text, FieldValidation::Strict).expect("decodes");
        let config_map = ConfigMap::try_from(decoded[0].object.clone()).expect("a ConfigMap");
        assert_eq!(config_map.data["80"], "http");
        assert_eq!(config_map.data["true"], "yes");
    }

    #[test]
    fn json_body_must_be_one_complete_value() {
        let error = decode_json(
            br#"{"apiVersion":"v1","kind":"Namespace"} {}"#,
            FieldValidation::Strict,
        )
        .expect_err("trailing data");
        assert!(matches!(error, DecodeError::Json { .. }), "{error:?}");
        let error =
            decode_json(b"{\"apiVersion\":", FieldValidation::Strict).expect_err("truncated");
        assert!(error.to_string().starts_with("invalid JSON: "), "{error}");
    }

    #[test]
    fn field_validation_parses_kubernetes_spelling_only() {
        let cases = [
            ("Strict", Some(FieldValidation::Strict)),
            ("Warn", Some(FieldValidation::Warn)),
            ("Ignore", Some(FieldValidation::Ignore)),
            ("strict", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<FieldValidation>().ok(), want, "{text:?}");
        }
        assert_eq!(FieldValidation::default(), FieldValidation::Strict);
    }
}
