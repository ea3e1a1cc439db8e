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
