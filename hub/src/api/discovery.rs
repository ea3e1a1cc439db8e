//! Discovery: the documents at `/version`, `/api`, `/apis`, `/apis/{group}`,
//! `/api/v1` and `/apis/{group}/{version}` that kubectl reads to turn `po`,
//! `deploy` or `all` into a resource path, a scope and a set of verbs.
//!
//! Everything is generated from [`KINDS`]; the rules mirror kube-apiserver
//! v1.31:
//!
//! - the shapes of `APIVersions`, `APIGroupList`, `APIGroup` and
//!   `APIResourceList` (`k8s.io/apimachinery/pkg/apis/meta/v1/types.go`),
//!   resources sorted by name with each subresource (`pods/status`) listed
//!   after its parent, as `/api/v1` of a v1.31 cluster lists them;
//! - the verbs of each resource (`staging/src/k8s.io/apiserver/pkg/endpoints/
//!   installer.go`: a store that can list and delete collections has
//!   `deletecollection`; the namespace store cannot);
//! - `storageVersionHash` (`apiserver/pkg/endpoints/discovery/
//!   storageversionhash.go`: base64 of the first 8 bytes of the SHA-256 of
//!   `group/version/kind`);
//! - the aggregated discovery document `apidiscovery.k8s.io/v2`
//!   `APIGroupDiscoveryList` (`k8s.io/api/apidiscovery/v2/types.go`), which
//!   client-go ≥ 1.30 asks for first with
//!   `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`
//!   (1.26–1.29 ask for `v2beta1`, the same document under another
//!   apiVersion) and recognises by the response's `Content-Type`
//!   (`client-go/discovery/discovery_client.go`). Any other `Accept` gets the
//!   plain document and `Content-Type: application/json`, on which client-go
//!   falls back to one request per group version.
//!
//! Subresources are listed only where Flotilla serves them: `status` of the
//! kinds that have one in Kubernetes, `scale` of Deployments and ReplicaSets
//! (`autoscaling/v1` `Scale`, which `kubectl scale` finds here) and
//! `pods/log`. `pods/exec`, `pods/eviction`, `pods/binding`, the proxies and
//! `namespaces/finalize` are not listed, so `kubectl drain` deletes pods
//! instead of evicting them.

use axum::http::header::{ACCEPT, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use flotilla_shared::model::{KINDS, KindInfo};
use serde_json::{Map, Value, json};

/// The Kubernetes release whose API Flotilla claims to serve. kubectl warns
/// when its own minor version is more than one away from this one.
pub const KUBERNETES_MAJOR: &str = "1";
/// See [`KUBERNETES_MAJOR`].
pub const KUBERNETES_MINOR: &str = "31";
/// `gitVersion` of `/version`: the Kubernetes version with Flotilla's own as
/// semver build metadata (as k3s reports `v1.31.4+k3s1`), so that version
/// constraints such as `>=1.31.0` still match.
pub const GIT_VERSION: &str = concat!("v1.31.0+flotilla-", env!("CARGO_PKG_VERSION"));

/// The content type of an aggregated discovery v2 response.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// The content type of an aggregated discovery v2beta1 response.
pub const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Every verb of a resource whose store lists, watches and deletes collections.
const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// The namespace store has no `deletecollection`.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// A subresource Flotilla serves, as discovery lists it (`deployments/scale`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subresource {
    /// The path segment after the object's name: `status`, `scale`, `log`.
    pub name: &'static str,
    /// The kind the subresource reads and writes as `(group, version, kind)`;
    /// `None` when it is the parent's own kind (`pods/status` is a `Pod`).
    pub response_kind: Option<(&'static str, &'static str, &'static str)>,
    pub verbs: &'static [&'static str],
}

const STATUS: Subresource = Subresource {
    name: "status",
    response_kind: None,
    verbs: STATUS_VERBS,
};
const SCALE: Subresource = Subresource {
    name: "scale",
    response_kind: Some(("autoscaling", "v1", "Scale")),
    verbs: STATUS_VERBS,
};
const LOG: Subresource = Subresource {
    name: "log",
    response_kind: None,
    verbs: &["get"],
};

impl Subresource {
    /// `(group, version, kind)` of what the subresource of `parent` returns.
    pub fn kind_of(&self, parent: &KindInfo) -> (&'static str, &'static str, &'static str) {
        self.response_kind
            .unwrap_or((parent.group, parent.version, parent.kind))
    }
}

/// The subresources Flotilla serves for `info`, in the order discovery lists them.
pub fn subresources(info: &KindInfo) -> &'static [Subresource] {
    match (info.group, info.plural) {
        ("", "pods") => &[LOG, STATUS],
        ("", "namespaces" | "nodes" | "services") => &[STATUS],
        ("apps", "deployments" | "replicasets") => &[SCALE, STATUS],
        ("apps", "daemonsets") | ("batch", "jobs") => &[STATUS],
        _ => &[],
    }
}

/// The verbs of the resource itself, as kube-apiserver lists them.
pub fn verbs(info: &KindInfo) -> &'static [&'static str] {
    if info.group.is_empty() && info.plural == "namespaces" {
        NAMESPACE_VERBS
    } else {
        ALL_VERBS
    }
}

/// kube-apiserver's `storageVersionHash`: base64 of the first 8 bytes of
/// SHA-256 over `group/version/kind` of the storage version (Flotilla stores
/// every kind in the version it serves).
pub fn storage_version_hash(info: &KindInfo) -> String {
    let gvk = format!("{}/{}/{}", info.group, info.version, info.kind);
    let digest = ring::digest::digest(&ring::digest::SHA256, gvk.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": KUBERNETES_MAJOR,
        "minor": KUBERNETES_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": option_env!("FLOTILLA_GIT_COMMIT").unwrap_or(""),
        "gitTreeState": "",
        "buildDate": option_env!("FLOTILLA_BUILD_DATE").unwrap_or(""),
        "goVersion": "",
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `linux/arm64` in Go's spelling of the target this hub was built for.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// `/api`: the versions of the core group. `serverAddressByClientCIDRs` is
/// empty: clients use the address they reached the server at.
pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

/// The named groups Flotilla serves, in [`KINDS`] order, each with its
/// versions (the first preferred).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for info in KINDS.iter().filter(|info| !info.group.is_empty()) {
        match groups.iter_mut().find(|(group, _)| *group == info.group) {
            Some((_, versions)) if !versions.contains(&info.version) => versions.push(info.version),
            Some(_) => {}
            None => groups.push((info.group, vec![info.version])),
        }
    }
    groups
}

/// Every `(group, version)` Flotilla serves, the core group (`""`) first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![("", "v1")];
    for (group, versions) in groups() {
        all.extend(versions.into_iter().map(|version| (group, version)));
    }
    all
}

fn group_value(group: &str, versions: &[&str]) -> Value {
    let version =
        |version: &str| json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| version(v)).collect::<Vec<_>>(),
        "preferredVersion": version(versions[0]),
    })
}

/// `/apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .iter()
        .map(|(group, versions)| group_value(group, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, or `None` for a group Flotilla does not serve.
pub fn api_group(group: &str) -> Option<Value> {
    let (name, versions) = groups().into_iter().find(|(name, _)| *name == group)?;
    let mut value = group_value(name, &versions);
    let object = value.as_object_mut()?;
    object.insert("kind".into(), "APIGroup".into());
    object.insert("apiVersion".into(), "v1".into());
    Some(value)
}

/// The kinds served under `group`/`version`, sorted by plural.
pub fn kinds_of(group: &str, version: &str) -> Vec<&'static KindInfo> {
    let mut kinds: Vec<_> = KINDS
        .iter()
        .filter(|info| info.group == group && info.version == version)
        .collect();
    kinds.sort_by_key(|info| info.plural);
    kinds
}

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|item| Value::from(*item)).collect())
}

/// Inserts `key` unless `items` is empty (Go's `omitempty`).
fn insert_list(object: &mut Map<String, Value>, key: &str, items: &[&str]) {
    if !items.is_empty() {
        object.insert(key.into(), strings(items));
    }
}

fn api_resource(info: &KindInfo) -> Value {
    let mut resource = Map::new();
    resource.insert("name".into(), info.plural.into());
    resource.insert("singularName".into(), info.singular().into());
    resource.insert("namespaced".into(), info.namespaced.into());
    resource.insert("kind".into(), info.kind.into());
    resource.insert("verbs".into(), strings(verbs(info)));
    insert_list(&mut resource, "shortNames", info.short_names);
    insert_list(&mut resource, "categories", info.categories);
    resource.insert(
        "storageVersionHash".into(),
        storage_version_hash(info).into(),
    );
    Value::Object(resource)
}

fn api_subresource(info: &KindInfo, subresource: &Subresource) -> Value {
    let mut resource = Map::new();
    resource.insert(
        "name".into(),
        format!("{}/{}", info.plural, subresource.name).into(),
    );
    resource.insert("singularName".into(), "".into());
    resource.insert("namespaced".into(), info.namespaced.into());
    let (group, version, kind) = subresource.kind_of(info);
    if (group, version) != (info.group, info.version) {
        resource.insert("group".into(), group.into());
        resource.insert("version".into(), version.into());
    }
    resource.insert("kind".into(), kind.into());
    resource.insert("verbs".into(), strings(subresource.verbs));
    Value::Object(resource)
}

/// `/api/v1` (`group` empty) and `/apis/{group}/{version}`: every resource
/// and subresource, or `None` for a group version Flotilla does not serve.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let kinds = kinds_of(group, version);
    if kinds.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for info in kinds {
        resources.push(api_resource(info));
        for subresource in subresources(info) {
            resources.push(api_subresource(info, subresource));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// Which discovery document a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryFormat {
    /// `APIVersions` at `/api`, `APIGroupList` at `/apis`.
    Plain,
    /// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
    AggregatedV2,
    /// `apidiscovery.k8s.io/v2beta1` `APIGroupDiscoveryList`.
    AggregatedV2Beta1,
}

impl DiscoveryFormat {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            DiscoveryFormat::Plain => "application/json",
            DiscoveryFormat::AggregatedV2 => AGGREGATED_V2,
            DiscoveryFormat::AggregatedV2Beta1 => AGGREGATED_V2BETA1,
        }
    }
}

/// The format an `Accept` header prefers: the media range with the highest
/// `q` (the earliest among equals) that names one of the formats. Ranges
/// Flotilla cannot produce (protobuf, `as=Table`) are skipped; a header
/// naming none of the formats gets [`DiscoveryFormat::Plain`].
pub fn negotiate(accept: &str) -> DiscoveryFormat {
    let mut best: Option<(f32, DiscoveryFormat)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let (mut g, mut v, mut as_kind, mut q) = (None, None, None, 1.0_f32);
        for parameter in parts {
            let Some((key, value)) = parameter.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim() {
                "g" => g = Some(value),
                "v" => v = Some(value),
                "as" => as_kind = Some(value),
                "q" => q = value.parse().unwrap_or(0.0),
                _ => {}
            }
        }
        let format = match (media.as_str(), g, v, as_kind) {
            (
                "application/json",
                Some("apidiscovery.k8s.io"),
                Some("v2"),
                Some("APIGroupDiscoveryList"),
            ) => DiscoveryFormat::AggregatedV2,
            (
                "application/json",
                Some("apidiscovery.k8s.io"),
                Some("v2beta1"),
                Some("APIGroupDiscoveryList"),
            ) => DiscoveryFormat::AggregatedV2Beta1,
            ("application/json" | "application/*" | "*/*", None, None, None) => {
                DiscoveryFormat::Plain
            }
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
            best = Some((q, format));
        }
    }
    best.map_or(DiscoveryFormat::Plain, |(_, format)| format)
}

fn response_kind(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn discovery_resource(info: &KindInfo) -> Value {
    let mut resource = Map::new();
    resource.insert("resource".into(), info.plural.into());
    resource.insert(
        "responseKind".into(),
        response_kind(info.group, info.version, info.kind),
    );
    let scope = if info.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    };
    resource.insert("scope".into(), scope.into());
    resource.insert("singularResource".into(), info.singular().into());
    resource.insert("verbs".into(), strings(verbs(info)));
    insert_list(&mut resource, "shortNames", info.short_names);
    insert_list(&mut resource, "categories", info.categories);
    let subresources: Vec<Value> = subresources(info)
        .iter()
        .map(|subresource| {
            let (group, version, kind) = subresource.kind_of(info);
            json!({
                "subresource": subresource.name,
                "responseKind": response_kind(group, version, kind),
                "verbs": strings(subresource.verbs),
            })
        })
        .collect();
    if !subresources.is_empty() {
        resource.insert("subresources".into(), subresources.into());
    }
    Value::Object(resource)
}

fn discovery_group(group: &str, versions: &[&str]) -> Value {
    let mut metadata = Map::new();
    if !group.is_empty() {
        metadata.insert("name".into(), group.into());
    }
    metadata.insert("creationTimestamp".into(), Value::Null);
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = kinds_of(group, version)
                .into_iter()
                .map(discovery_resource)
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": metadata, "versions": versions})
}

/// The aggregated discovery document (`apidiscovery.k8s.io/v2`
/// `APIGroupDiscoveryList`) of `/api` (`legacy`, the core group alone) or of
/// `/apis` (every named group).
pub fn aggregated_discovery(legacy: bool) -> Value {
    let items: Vec<Value> = if legacy {
        vec![discovery_group("", &["v1"])]
    } else {
        groups()
            .iter()
            .map(|(group, versions)| discovery_group(group, versions))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// The document of `/api` (`legacy`) or `/apis` in `format`.
pub fn discovery_document(legacy: bool, format: DiscoveryFormat) -> Value {
    match format {
        DiscoveryFormat::Plain if legacy => api_versions(),
        DiscoveryFormat::Plain => api_group_list(),
        DiscoveryFormat::AggregatedV2 => aggregated_discovery(legacy),
        DiscoveryFormat::AggregatedV2Beta1 => {
            let mut document = aggregated_discovery(legacy);
            document["apiVersion"] = "apidiscovery.k8s.io/v2beta1".into();
            document
        }
    }
}

/// Every `Accept` header of a request, joined into one list.
pub fn accept(headers: &HeaderMap) -> String {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
}

fn respond(legacy: bool, headers: &HeaderMap) -> Response {
    let format = negotiate(&accept(headers));
    let body = discovery_document(legacy, format).to_string();
    let headers = [
        (
            CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        ),
        (VARY, HeaderValue::from_static("Accept")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

/// The response to `GET /api`, in the format the `Accept` header asks for.
pub fn respond_api(headers: &HeaderMap) -> Response {
    respond(true, headers)
}

/// The response to `GET /apis`, in the format the `Accept` header asks for.
pub fn respond_apis(headers: &HeaderMap) -> Response {
    respond(false, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries of `/api/v1` as a kube-apiserver v1.31 cluster serves them.
    const KUBE_V1_31_CORE: &[&str] = &[
        r#"{"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["cm"],"storageVersionHash":"qFsyl6wFWjQ="}"#,
        r#"{"name":"endpoints","singularName":"endpoints","namespaced":true,"kind":"Endpoints","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["ep"],"storageVersionHash":"fWeeMqaN/OA="}"#,
        r#"{"name":"events","singularName":"event","namespaced":true,"kind":"Event","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["ev"],"storageVersionHash":"r2yiGXH7wu8="}"#,
        r#"{"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["create","delete","get","list","patch","update","watch"],"shortNames":["ns"],"storageVersionHash":"Q3oi5N2YM8M="}"#,
        r#"{"name":"namespaces/status","singularName":"","namespaced":false,"kind":"Namespace","verbs":["get","patch","update"]}"#,
        r#"{"name":"nodes","singularName":"node","namespaced":false,"kind":"Node","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["no"],"storageVersionHash":"XwShjMxG9Fs="}"#,
        r#"{"name":"nodes/status","singularName":"","namespaced":false,"kind":"Node","verbs":["get","patch","update"]}"#,
        r#"{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["po"],"categories":["all"],"storageVersionHash":"xPOwRZ+Yhw8="}"#,
        r#"{"name":"pods/log","singularName":"","namespaced":true,"kind":"Pod","verbs":["get"]}"#,
        r#"{"name":"pods/status","singularName":"","namespaced":true,"kind":"Pod","verbs":["get","patch","update"]}"#,
        r#"{"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"storageVersionHash":"S6u1pOWzb84="}"#,
        r#"{"name":"services","singularName":"service","namespaced":true,"kind":"Service","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["svc"],"categories":["all"],"storageVersionHash":"0/CO1lhkEBI="}"#,
        r#"{"name":"services/status","singularName":"","namespaced":true,"kind":"Service","verbs":["get","patch","update"]}"#,
    ];

    fn resources(group: &str, version: &str) -> Vec<Value> {
        let list = api_resource_list(group, version).expect("group version is served");
        list["resources"].as_array().expect("resources").clone()
    }

    fn resource(group: &str, version: &str, name: &str) -> Value {
        resources(group, version)
            .into_iter()
            .find(|resource| resource["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
    }

    #[test]
    fn core_resources_are_listed_as_kube_apiserver_lists_them() {
        for expected in KUBE_V1_31_CORE {
            let expected: Value = serde_json::from_str(expected).expect("fixture is JSON");
            let name = expected["name"].as_str().expect("name");
            assert_eq!(resource("", "v1", name), expected, "{name}");
        }
    }

    #[test]
    fn scale_subresources_name_autoscaling_v1_scale() {
        for name in ["deployments/scale", "replicasets/scale"] {
            let scale = resource("apps", "v1", name);
            assert_eq!(
                scale,
                json!({"name": name, "singularName": "", "namespaced": true, "group": "autoscaling",
                       "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}),
            );
        }
    }

    #[test]
    fn named_group_resources_carry_short_names_categories_and_hashes() {
        let cases = [
            (
                "apps",
                "deployments",
                "Deployment",
                &["deploy"][..],
                &["all"][..],
                "8aSe+NMegvE=",
            ),
            (
                "apps",
                "replicasets",
                "ReplicaSet",
                &["rs"],
                &["all"],
                "P1RzHs8/mWQ=",
            ),
            (
                "apps",
                "daemonsets",
                "DaemonSet",
                &["ds"],
                &["all"],
                "dd7pWHUlMKQ=",
            ),
            ("batch", "jobs", "Job", &[], &["all"], "mudhfqk/qZY="),
        ];
        for (group, name, kind, short_names, categories, hash) in cases {
            let found = resource(group, "v1", name);
            assert_eq!(found["kind"], kind);
            assert_eq!(found["verbs"], strings(ALL_VERBS), "{name}");
            assert_eq!(
                found.get("shortNames").cloned().unwrap_or(json!([])),
                strings(short_names)
            );
            assert_eq!(
                found.get("categories").cloned().unwrap_or(json!([])),
                strings(categories)
            );
            assert_eq!(found["storageVersionHash"], hash, "{name}");
        }
    }

    #[test]
    fn every_kind_is_in_its_resource_list_and_in_aggregated_discovery() {
        for info in KINDS {
            let listed = resource(info.group, info.version, info.plural);
            assert_eq!(listed["kind"], info.kind);
            assert_eq!(listed["namespaced"], info.namespaced);

            let document = aggregated_discovery(info.group.is_empty());
            let group = document["items"]
                .as_array()
                .and_then(|items| {
                    items.iter().find(|item| {
                        item["metadata"]
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            == info.group
                    })
                })
                .unwrap_or_else(|| panic!("group of {} is listed", info.kind));
            let version = group["versions"]
                .as_array()
                .and_then(|versions| versions.iter().find(|v| v["version"] == info.version))
                .expect("version is listed");
            assert_eq!(version["freshness"], "Current");
            let found = version["resources"]
                .as_array()
                .and_then(|resources| resources.iter().find(|r| r["resource"] == info.plural))
                .unwrap_or_else(|| panic!("{} is in aggregated discovery", info.plural));
            assert_eq!(
                found["responseKind"],
                response_kind(info.group, info.version, info.kind)
            );
            assert_eq!(
                found["scope"],
                if info.namespaced {
                    "Namespaced"
                } else {
                    "Cluster"
                }
            );
            assert_eq!(found["singularResource"], info.singular());
            assert_eq!(found["verbs"], strings(verbs(info)));
            let subresources: Vec<&str> = found
                .get("subresources")
                .and_then(Value::as_array)
                .map(|all| {
                    all.iter()
                        .filter_map(|s| s["subresource"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let expected: Vec<&str> = subresources_of_names(info);
            assert_eq!(subresources, expected, "{}", info.plural);
        }
    }

    fn subresources_of_names(info: &KindInfo) -> Vec<&'static str> {
        subresources(info).iter().map(|s| s.name).collect()
    }

    #[test]
    fn aggregated_scale_subresource_has_its_own_response_kind() {
        let document = aggregated_discovery(false);
        let apps = &document["items"][0];
        assert_eq!(apps["metadata"]["name"], "apps");
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .and_then(|all| all.iter().find(|r| r["resource"] == "deployments"))
            .expect("deployments");
        assert_eq!(
            deployments["subresources"],
            json!([
                {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]},
                {"subresource": "status", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "verbs": ["get", "patch", "update"]},
            ])
        );
        assert_eq!(document["kind"], "APIGroupDiscoveryList");
        assert_eq!(document["apiVersion"], "apidiscovery.k8s.io/v2");
    }

    #[test]
    fn legacy_aggregated_discovery_is_the_unnamed_core_group_alone() {
        let document = aggregated_discovery(true);
        let items = document["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"].get("name"), None);
        assert_eq!(items[0]["versions"][0]["version"], "v1");
    }

    #[test]
    fn resources_are_sorted_by_name_with_subresources_after_their_parent() {
        for (group, version) in group_versions() {
            let names: Vec<String> = resources(group, version)
                .iter()
                .map(|r| r["name"].as_str().expect("name").to_owned())
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{group}/{version}");
        }
    }

    #[test]
    fn unknown_groups_and_versions_are_not_found() {
        assert_eq!(api_resource_list("", "v2"), None);
        assert_eq!(api_resource_list("apps", "v1beta1"), None);
        assert_eq!(api_resource_list("policy", "v1"), None);
        assert_eq!(api_group("policy"), None);
        assert_eq!(api_group(""), None);
    }

    #[test]
    fn group_list_names_every_named_group_with_its_preferred_version() {
        let list = api_group_list();
        let names: Vec<&str> = list["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .filter_map(|group| group["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "batch",
                "coordination.k8s.io",
                "rbac.authorization.k8s.io"
            ]
        );
        let rbac = api_group("rbac.authorization.k8s.io").expect("rbac is served");
        assert_eq!(rbac["kind"], "APIGroup");
        assert_eq!(
            rbac["preferredVersion"],
            json!({"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"})
        );
        assert_eq!(api_versions()["versions"], json!(["v1"]));
    }

    #[test]
    fn version_claims_the_kubernetes_release_it_serves() {
        let version = version();
        assert_eq!(version["major"], KUBERNETES_MAJOR);
        assert_eq!(version["minor"], KUBERNETES_MINOR);
        let prefix = format!("v{KUBERNETES_MAJOR}.{KUBERNETES_MINOR}.");
        assert!(GIT_VERSION.starts_with(&prefix), "{GIT_VERSION}");
        assert!(
            version["platform"]
                .as_str()
                .is_some_and(|p| p.contains('/'))
        );
    }

    #[test]
    fn accept_headers_choose_the_discovery_format() {
        use DiscoveryFormat::*;
        let cases = [
            // client-go 1.30+ (kubectl 1.30-1.33).
            (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
                AggregatedV2,
            ),
            // client-go 1.26-1.29.
            (
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
                AggregatedV2Beta1,
            ),
            ("application/json", Plain),
            ("application/json, */*", Plain),
            ("*/*", Plain),
            ("", Plain),
            (
                "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                Plain,
            ),
            ("application/json;as=Table;g=meta.k8s.io;v=v1", Plain),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,application/json",
                Plain,
            ),
            (
                "application/json;q=0.1, application/json; g=\"apidiscovery.k8s.io\"; v=v2; as=APIGroupDiscoveryList",
                AggregatedV2,
            ),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0",
                Plain,
            ),
        ];
        for (accept, expected) in cases {
            assert_eq!(negotiate(accept), expected, "{accept}");
        }
    }

    #[test]
    fn each_format_has_its_document_and_content_type() {
        let v2beta1 = discovery_document(false, DiscoveryFormat::AggregatedV2Beta1);
        assert_eq!(v2beta1["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        assert_eq!(v2beta1["items"], aggregated_discovery(false)["items"]);
        assert_eq!(
            discovery_document(true, DiscoveryFormat::Plain),
            api_versions()
        );
        assert_eq!(
            discovery_document(false, DiscoveryFormat::Plain),
            api_group_list()
        );

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(AGGREGATED_V2));
        let response = respond_apis(&headers);
        assert_eq!(response.headers()[CONTENT_TYPE], AGGREGATED_V2);
        let response = respond_api(&HeaderMap::new());
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
