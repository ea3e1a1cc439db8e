//! The OpenAPI documents kubectl reads: v3 per group version
//! (`/openapi/v3`, `/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`) and the
//! v2 document (`/openapi/v2`), both generated from [`KINDS`] and the
//! subresources [`discovery`] lists.
//!
//! What kubectl needs from them, and so what they are built to satisfy:
//!
//! - **Server-side field validation.** kubectl ≥ 1.25 validates with
//!   `--validate=strict` by default. Before sending an object it asks
//!   whether the server honours `fieldValidation`
//!   (`k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go`,
//!   `supportsQueryParamV3`): it fetches `/openapi/v3`, follows the
//!   `serverRelativeURL` of `api/v1` or `apis/{group}/{version}`
//!   (`k8s.io/client-go/openapi3/root.go`), and looks for a PATCH operation
//!   whose `x-kubernetes-group-version-kind` is the object's kind and whose
//!   own `parameters` (not the path's) contain `fieldValidation` in the
//!   query. Found, it leaves validation to the server; not supported, it
//!   validates on the client from the v2 document; on any other error it
//!   fails. So every object path here has get, put, patch and delete
//!   operations carrying `x-kubernetes-action` and the kind, and every PATCH
//!   lists `dryRun`, `fieldManager`, `fieldValidation` and `force`.
//! - **Client-side apply.** `kubectl apply` computes a strategic merge patch
//!   from the OpenAPI v3 schemas when the PATCH operation's `requestBody`
//!   offers `application/strategic-merge-patch+json`
//!   (`k8s.io/kubectl/pkg/cmd/apply/patcher.go`, `gvkSupportsPatchOpenAPIV3`).
//!   That would need complete schemas with `x-kubernetes-patch-strategy` and
//!   `x-kubernetes-patch-merge-key` for every nested type, and an
//!   incomplete one silently replaces lists that should merge. Every kind
//!   Flotilla serves is a built-in Kubernetes kind, so PATCH operations here
//!   have no `requestBody` in v3 and do not list strategic merge patch among
//!   their `consumes` in v2: kubectl then builds the patch from the Go types
//!   compiled into it, which carry the exact patch metadata. The server
//!   still accepts strategic merge patches.
//! - **`kubectl explain`** reads `components.schemas` by their
//!   `x-kubernetes-group-version-kind`. The schemas here describe the
//!   envelope of each kind (`apiVersion`, `kind`, `metadata`, and for lists
//!   `items`), `ObjectMeta`, `Status`, `DeleteOptions` and `Scale`; the
//!   fields of each kind's spec and status are those of the Kubernetes API
//!   reference and are not repeated here.
//!
//! Each v3 document's `serverRelativeURL` carries `?hash=` the SHA-256 of
//! the document, so client-go's cache of it is replaced exactly when the
//! document changes.
//!
//! The v2 document exists as JSON ([`openapi_v2`]) and in protobuf
//! ([`openapi_v2_protobuf`]), the only form client-go asks for
//! (`discovery.OpenAPISchema`): kubectl 1.27 and 1.28 load it before every
//! create or apply and fail without it; 1.25–1.28 may check `fieldValidation`
//! in it; 1.20–1.24 validate objects against its definitions (the protobuf
//! has none, so they leave validation to the server).
//!
//! Operation ids, tags, parameter names and responses follow the documents
//! of kube-apiserver v1.31 (`api/openapi-spec/v3/apis__apps__v1_openapi.json`
//! in kubernetes/kubernetes); the deprecated `/watch/` paths are left out.

use std::sync::LazyLock;

use axum::http::header::{CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use flotilla_shared::model::{KINDS, KindInfo};
use serde_json::{Map, Value, json};

use crate::api::discovery::{self, Subresource};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// The content types a PATCH is documented to accept (strategic merge patch
/// left out on purpose: see the module documentation).
const PATCH_CONSUMES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// The query parameters of each action, by name (see [`query_parameter`]).
const LIST_QUERY: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_QUERY: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_QUERY: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_QUERY: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_QUERY: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];
const LOG_QUERY: &[&str] = &[
    "container",
    "follow",
    "limitBytes",
    "previous",
    "sinceSeconds",
    "tailLines",
    "timestamps",
];

/// `(type, description)` of a query parameter.
fn query_parameter(name: &str) -> (&'static str, &'static str) {
    match name {
        "allowWatchBookmarks" => ("boolean", "requests watch events with type \"BOOKMARK\""),
        "continue" => (
            "string",
            "the continue token of the previous page of a list",
        ),
        "dryRun" => (
            "string",
            "when present (\"All\"), modifications are not persisted",
        ),
        "fieldManager" => ("string", "the name of the actor making these changes"),
        "fieldSelector" => ("string", "restricts the returned objects by their fields"),
        "fieldValidation" => (
            "string",
            "how the server treats unknown or duplicate fields: Ignore, Warn or Strict",
        ),
        "force" => (
            "boolean",
            "re-acquires conflicting fields owned by other managers (apply only)",
        ),
        "gracePeriodSeconds" => (
            "integer",
            "the duration in seconds before the object is deleted",
        ),
        "labelSelector" => ("string", "restricts the returned objects by their labels"),
        "limit" => ("integer", "the maximum number of objects a list returns"),
        "orphanDependents" => ("boolean", "deprecated: use propagationPolicy"),
        "pretty" => ("string", "if 'true', the output is pretty printed"),
        "propagationPolicy" => ("string", "whether and how dependents are garbage collected"),
        "resourceVersion" => ("string", "the resource version a list or watch starts from"),
        "resourceVersionMatch" => ("string", "how resourceVersion applies to a list"),
        "sendInitialEvents" => (
            "boolean",
            "a watch starts with synthetic events for existing objects",
        ),
        "timeoutSeconds" => ("integer", "a timeout for the list or watch call"),
        "watch" => ("boolean", "watch for changes instead of listing"),
        "container" => ("string", "the container whose logs to stream"),
        "follow" => ("boolean", "follow the log stream"),
        "limitBytes" => (
            "integer",
            "the number of bytes to read from the server before stopping",
        ),
        "previous" => ("boolean", "the logs of the previously terminated container"),
        "sinceSeconds" => (
            "integer",
            "a relative time in seconds before now to show logs from",
        ),
        "tailLines" => (
            "integer",
            "the number of lines from the end of the log to show",
        ),
        "timestamps" => (
            "boolean",
            "prefix every line of output with an RFC 3339 timestamp",
        ),
        _ => ("string", ""),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Put,
    Post,
    Patch,
    Delete,
}

impl Method {
    fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// What a response or a request body carries.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Payload {
    /// A JSON object of the named schema.
    Schema(String),
    /// Plain text (logs).
    Text,
}

/// One operation of one path, rendered into v3 by [`v3_operation`] and into
/// v2 by [`v2_operation`].
#[derive(Clone, Debug)]
struct Operation {
    method: Method,
    /// `x-kubernetes-action`: get, list, post, put, patch, delete, deletecollection.
    action: &'static str,
    id: String,
    description: String,
    tag: String,
    gvk: (&'static str, &'static str, &'static str),
    /// Names of its own query parameters (see [`query_parameter`]).
    query: &'static [&'static str],
    /// The request body and whether it is required.
    body: Option<(Payload, bool)>,
    /// `(status code, payload)`.
    responses: Vec<(&'static str, Payload)>,
    /// A list: its 200 response is also offered as a watch stream.
    streams: bool,
}

/// A path and its operations.
#[derive(Clone, Debug)]
struct PathItem {
    path: String,
    /// `name` and `namespace` where the path has them; `pretty` is always added.
    path_parameters: Vec<(&'static str, String)>,
    operations: Vec<Operation>,
}

/// `io.k8s.api.apps.v1` for apps/v1, `io.k8s.api.core.v1` for the core group.
fn package(group: &str, version: &str) -> String {
    let package = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    format!("io.k8s.api.{package}.{version}")
}

fn schema_name(info: &KindInfo) -> String {
    format!("{}.{}", package(info.group, info.version), info.kind)
}

fn upper_first(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

/// The group part of operation ids and tags: `Core`, `Apps`,
/// `RbacAuthorization` (for `rbac.authorization.k8s.io`).
fn group_ident(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(upper_first)
        .collect()
}

fn base_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// What the operations of one kind share.
struct KindOperations {
    info: &'static KindInfo,
    /// `AppsV1`: the group and version in operation ids.
    group_version: String,
    tag: String,
    object: Payload,
}

impl KindOperations {
    fn new(info: &'static KindInfo) -> KindOperations {
        let group = group_ident(info.group);
        let mut tag = group.clone();
        tag.replace_range(..1, &tag[..1].to_ascii_lowercase());
        KindOperations {
            info,
            group_version: format!("{group}{}", upper_first(info.version)),
            tag: format!("{tag}_{}", info.version),
            object: Payload::Schema(schema_name(info)),
        }
    }

    /// `readAppsV1NamespacedDeploymentScale` for `("read", "Scale")`.
    fn id(&self, verb: &str, suffix: &str) -> String {
        let scope = if self.info.namespaced {
            "Namespaced"
        } else {
            ""
        };
        format!(
            "{verb}{}{scope}{}{suffix}",
            self.group_version, self.info.kind
        )
    }

    fn operation(
        &self,
        method: Method,
        action: &'static str,
        id: String,
        description: String,
    ) -> Operation {
        Operation {
            method,
            action,
            id,
            description,
            tag: self.tag.clone(),
            gvk: (self.info.group, self.info.version, self.info.kind),
            query: &[],
            body: None,
            responses: Vec::new(),
            streams: false,
        }
    }

    fn list(&self, id: String) -> Operation {
        Operation {
            query: LIST_QUERY,
            responses: vec![(
                "200",
                Payload::Schema(format!("{}List", schema_name(self.info))),
            )],
            streams: true,
            ..self.operation(
                Method::Get,
                "list",
                id,
                format!("list or watch objects of kind {}", self.info.kind),
            )
        }
    }

    /// list, create and deletecollection on the collection path.
    fn collection(&self) -> Vec<Operation> {
        let kind = self.info.kind;
        let scope = if self.info.namespaced {
            "Namespaced"
        } else {
            ""
        };
        let object = &self.object;
        vec![
            self.list(self.id("list", "")),
            Operation {
                query: WRITE_QUERY,
                body: Some((object.clone(), true)),
                responses: vec![
                    ("200", object.clone()),
                    ("201", object.clone()),
                    ("202", object.clone()),
                ],
                ..self.operation(
                    Method::Post,
                    "post",
                    self.id("create", ""),
                    format!("create a {kind}"),
                )
            },
            Operation {
                query: DELETE_COLLECTION_QUERY,
                body: Some((Payload::Schema(DELETE_OPTIONS.into()), false)),
                responses: vec![("200", Payload::Schema(STATUS.into()))],
                ..self.operation(
                    Method::Delete,
                    "deletecollection",
                    format!("delete{}Collection{scope}{kind}", self.group_version),
                    format!("delete collection of {kind}"),
                )
            },
        ]
    }

    /// get, put, patch and delete of one object.
    fn object(&self) -> Vec<Operation> {
        let mut operations = self.read_write(
            "",
            self.object.clone(),
            (self.info.group, self.info.version, self.info.kind),
        );
        let status = Payload::Schema(STATUS.into());
        operations.push(Operation {
            query: DELETE_QUERY,
            body: Some((Payload::Schema(DELETE_OPTIONS.into()), false)),
            responses: vec![("200", status.clone()), ("202", status)],
            ..self.operation(
                Method::Delete,
                "delete",
                self.id("delete", ""),
                format!("delete a {}", self.info.kind),
            )
        });
        operations
    }

    /// get, put and patch of the object (`subresource` empty) or of one of
    /// its subresources, each reading and writing `payload` of kind `gvk`.
    fn read_write(
        &self,
        subresource: &str,
        payload: Payload,
        gvk: (&'static str, &'static str, &'static str),
    ) -> Vec<Operation> {
        let suffix = upper_first(subresource);
        let what = if subresource.is_empty() {
            format!("the specified {}", self.info.kind)
        } else {
            format!("{subresource} of the specified {}", self.info.kind)
        };
        let operation = |method, action, verb, description: String, query, body: bool| Operation {
            gvk,
            query,
            body: body.then(|| (payload.clone(), true)),
            responses: if method == Method::Get {
                vec![("200", payload.clone())]
            } else {
                vec![("200", payload.clone()), ("201", payload.clone())]
            },
            ..self.operation(method, action, self.id(verb, &suffix), description)
        };
        vec![
            operation(
                Method::Get,
                "get",
                "read",
                format!("read {what}"),
                &[][..],
                false,
            ),
            operation(
                Method::Put,
                "put",
                "replace",
                format!("replace {what}"),
                WRITE_QUERY,
                true,
            ),
            operation(
                Method::Patch,
                "patch",
                "patch",
                format!("partially update {what}"),
                PATCH_QUERY,
                false,
            ),
        ]
    }

    /// The operations of `subresource`, limited to the verbs it serves.
    fn subresource(&self, subresource: &Subresource) -> Vec<Operation> {
        let kind = self.info.kind;
        if subresource.name == "log" {
            return vec![Operation {
                query: LOG_QUERY,
                responses: vec![("200", Payload::Text)],
                ..self.operation(
                    Method::Get,
                    "get",
                    self.id("read", "Log"),
                    format!("read log of the specified {kind}"),
                )
            }];
        }
        let gvk = subresource.kind_of(self.info);
        let payload = if gvk == (self.info.group, self.info.version, kind) {
            self.object.clone()
        } else {
            Payload::Schema(format!("{}.{}", package(gvk.0, gvk.1), gvk.2))
        };
        let mut operations = self.read_write(subresource.name, payload, gvk);
        operations.retain(|operation| {
            let verb = match operation.method {
                Method::Get => "get",
                Method::Put => "update",
                Method::Patch => "patch",
                Method::Post => "create",
                Method::Delete => "delete",
            };
            subresource.verbs.contains(&verb)
        });
        operations
    }
}

/// The paths and operations of one kind, as kube-apiserver's installer
/// (`apiserver/pkg/endpoints/installer.go`) lays them out.
fn path_items(info: &'static KindInfo) -> Vec<PathItem> {
    let operations = KindOperations::new(info);
    let kind = info.kind;
    let base = base_path(info.group, info.version);
    let mut collection_parameters = Vec::new();
    let collection = if info.namespaced {
        collection_parameters.push((
            "namespace",
            "object name and auth scope, such as for teams and projects".to_owned(),
        ));
        format!("{base}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{base}/{}", info.plural)
    };
    let mut object_parameters = vec![("name", format!("name of the {kind}"))];
    object_parameters.extend(collection_parameters.iter().cloned());

    let mut items = Vec::new();
    if info.namespaced {
        let id = format!("list{}{kind}ForAllNamespaces", operations.group_version);
        items.push(PathItem {
            path: format!("{base}/{}", info.plural),
            path_parameters: Vec::new(),
            operations: vec![operations.list(id)],
        });
    }
    items.push(PathItem {
        path: collection.clone(),
        path_parameters: collection_parameters,
        operations: operations.collection(),
    });
    let object_path = format!("{collection}/{{name}}");
    items.push(PathItem {
        path: object_path.clone(),
        path_parameters: object_parameters.clone(),
        operations: operations.object(),
    });
    for subresource in discovery::subresources(info) {
        items.push(PathItem {
            path: format!("{object_path}/{}", subresource.name),
            path_parameters: object_parameters.clone(),
            operations: operations.subresource(subresource),
        });
    }
    items
}

fn reference(prefix: &str, name: &str) -> Value {
    json!({ "$ref": format!("{prefix}{name}") })
}

/// `x-kubernetes-group-version-kind` of a schema (a list, as kube-openapi writes it).
fn schema_gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{ "group": group, "kind": kind, "version": version }])
}

fn text(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn envelope_properties(prefix: &str, metadata: &str) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        "apiVersion".into(),
        text("the versioned schema of this representation of an object"),
    );
    properties.insert(
        "kind".into(),
        text("the REST resource this object represents, in CamelCase"),
    );
    properties.insert("metadata".into(), reference(prefix, metadata));
    properties
}

fn kind_schema(info: &KindInfo, prefix: &str) -> Value {
    json!({
        "description": format!(
            "{} {} as in the Kubernetes API reference; this document describes its envelope only.",
            info.api_version, info.kind
        ),
        "type": "object",
        "properties": envelope_properties(prefix, OBJECT_META),
        "x-kubernetes-group-version-kind": schema_gvk(info.group, info.version, info.kind),
    })
}

fn list_schema(info: &KindInfo, prefix: &str) -> Value {
    let mut properties = envelope_properties(prefix, LIST_META);
    properties.insert(
        "items".into(),
        json!({ "type": "array", "items": reference(prefix, &schema_name(info)) }),
    );
    json!({
        "description": format!("a list of {}", info.kind),
        "type": "object",
        "required": ["items"],
        "properties": properties,
        "x-kubernetes-group-version-kind":
            schema_gvk(info.group, info.version, &format!("{}List", info.kind)),
    })
}

fn scale_schema(prefix: &str) -> Value {
    let mut properties = envelope_properties(prefix, OBJECT_META);
    properties.insert(
        "spec".into(),
        json!({
            "type": "object",
            "description": "the desired state of the scaled object",
            "properties": { "replicas": { "type": "integer", "format": "int32", "description": "the desired number of instances" } },
        }),
    );
    properties.insert(
        "status".into(),
        json!({
            "type": "object",
            "description": "the current state of the scaled object",
            "required": ["replicas"],
            "properties": {
                "replicas": { "type": "integer", "format": "int32", "description": "the actual number of observed instances" },
                "selector": text("the label query over pods that counts toward replicas"),
            },
        }),
    );
    json!({
        "description": "Scale of a scalable resource",
        "type": "object",
        "properties": properties,
        "x-kubernetes-group-version-kind": schema_gvk("autoscaling", "v1", "Scale"),
    })
}

fn meta_schemas(prefix: &str) -> Vec<(String, Value)> {
    let string_map = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let time = json!({ "type": "string", "format": "date-time" });
    let object_meta = json!({
        "description": "metadata that all persisted resources must have",
        "type": "object",
        "properties": {
            "annotations": string_map,
            "creationTimestamp": time,
            "deletionGracePeriodSeconds": { "type": "integer", "format": "int64" },
            "deletionTimestamp": time,
            "finalizers": strings,
            "generateName": text("a prefix the server uses to generate a unique name"),
            "generation": { "type": "integer", "format": "int64" },
            "labels": string_map,
            "managedFields": { "type": "array", "items": { "type": "object" } },
            "name": text("unique within a namespace"),
            "namespace": text("the namespace of a namespaced object"),
            "ownerReferences": { "type": "array", "items": { "type": "object" } },
            "resourceVersion": text("the version of this object, for optimistic concurrency"),
            "uid": text("unique in time and space"),
        },
    });
    let list_meta = json!({
        "description": "metadata that synthetic resources must have",
        "type": "object",
        "properties": {
            "continue": text("the token of the next page of a list"),
            "remainingItemCount": { "type": "integer", "format": "int64" },
            "resourceVersion": text("the version of the list"),
        },
    });
    let status = json!({
        "description": "the return value of calls that do not return other objects",
        "type": "object",
        "properties": {
            "apiVersion": text("the versioned schema of this representation of an object"),
            "code": { "type": "integer", "format": "int32" },
            "details": { "type": "object" },
            "kind": text("Status"),
            "message": text("a human-readable description of the status of this operation"),
            "metadata": reference(prefix, LIST_META),
            "reason": text("a machine-readable description of why this operation is in the Failure status"),
            "status": text("Success or Failure"),
        },
        "x-kubernetes-group-version-kind": schema_gvk("", "v1", "Status"),
    });
    let delete_options = json!({
        "description": "may be provided when deleting an API object",
        "type": "object",
        "properties": {
            "apiVersion": text("the versioned schema of this representation of an object"),
            "dryRun": strings,
            "gracePeriodSeconds": { "type": "integer", "format": "int64" },
            "kind": text("DeleteOptions"),
            "orphanDependents": { "type": "boolean" },
            "preconditions": {
                "type": "object",
                "properties": { "resourceVersion": { "type": "string" }, "uid": { "type": "string" } },
            },
            "propagationPolicy": text("Orphan, Background or Foreground"),
        },
    });
    let patch = json!({
        "description": "a patch body: a JSON patch, a JSON merge patch, a strategic merge patch or an apply configuration",
        "type": "object",
    });
    vec![
        (OBJECT_META.into(), object_meta),
        (LIST_META.into(), list_meta),
        (STATUS.into(), status),
        (DELETE_OPTIONS.into(), delete_options),
        (PATCH.into(), patch),
    ]
}

/// The schemas the operations of `kinds` refer to.
fn schemas(kinds: &[&'static KindInfo], prefix: &str) -> Map<String, Value> {
    let mut schemas: Map<String, Value> = meta_schemas(prefix).into_iter().collect();
    for info in kinds {
        schemas.insert(schema_name(info), kind_schema(info, prefix));
        schemas.insert(
            format!("{}List", schema_name(info)),
            list_schema(info, prefix),
        );
        if discovery::subresources(info)
            .iter()
            .any(|subresource| subresource.kind_of(info) == ("autoscaling", "v1", "Scale"))
        {
            schemas.insert(SCALE.into(), scale_schema(prefix));
        }
    }
    schemas
}

fn status_description(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "",
    }
}

/// The media types a payload is offered in, each with its schema.
fn v3_content(payload: &Payload, streams: bool) -> Value {
    let mut content = Map::new();
    match payload {
        Payload::Schema(name) => {
            let schema = json!({ "schema": reference(V3_PREFIX, name) });
            content.insert("application/json".into(), schema.clone());
            if streams {
                content.insert("application/json;stream=watch".into(), schema);
            }
        }
        Payload::Text => {
            content.insert(
                "text/plain".into(),
                json!({ "schema": { "type": "string" } }),
            );
        }
    }
    Value::Object(content)
}

const V3_PREFIX: &str = "#/components/schemas/";
const V2_PREFIX: &str = "#/definitions/";

fn operation_gvk(operation: &Operation) -> Value {
    let (group, version, kind) = operation.gvk;
    json!({ "group": group, "kind": kind, "version": version })
}

fn v3_operation(operation: &Operation) -> Value {
    let parameters: Vec<Value> = operation
        .query
        .iter()
        .map(|name| {
            let (kind, description) = query_parameter(name);
            json!({
                "name": name,
                "in": "query",
                "description": description,
                "schema": { "type": kind, "uniqueItems": true },
            })
        })
        .collect();
    let mut responses = Map::new();
    for (code, payload) in &operation.responses {
        responses.insert(
            (*code).into(),
            json!({
                "description": status_description(code),
                "content": v3_content(payload, operation.streams),
            }),
        );
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    let mut value = json!({
        "tags": [operation.tag],
        "description": operation.description,
        "operationId": operation.id,
        "parameters": parameters,
        "responses": responses,
        "x-kubernetes-action": operation.action,
        "x-kubernetes-group-version-kind": operation_gvk(operation),
    });
    if let Some((payload, required)) = &operation.body {
        value["requestBody"] = json!({
            "content": { "*/*": { "schema": v3_content(payload, false)["application/json"]["schema"] } },
            "required": required,
        });
    }
    value
}

fn v3_path_parameters(item: &PathItem) -> Vec<Value> {
    let mut parameters: Vec<Value> = item
        .path_parameters
        .iter()
        .map(|(name, description)| {
            json!({
                "name": name,
                "in": "path",
                "description": description,
                "required": true,
                "schema": { "type": "string", "uniqueItems": true },
            })
        })
        .collect();
    let (kind, description) = query_parameter("pretty");
    parameters.push(json!({
        "name": "pretty",
        "in": "query",
        "description": description,
        "schema": { "type": kind, "uniqueItems": true },
    }));
    parameters
}

/// The `api/v1` or `apis/{group}/{version}` key of a group version.
fn group_version_path(group: &str, version: &str) -> String {
    base_path(group, version).trim_start_matches('/').to_owned()
}

/// The OpenAPI v3 document of one group version.
fn v3_document(group: &str, version: &str) -> Value {
    let kinds = discovery::kinds_of(group, version);
    let mut paths = Map::new();
    for info in &kinds {
        for item in path_items(info) {
            let mut path = Map::new();
            path.insert("parameters".into(), v3_path_parameters(&item).into());
            for operation in &item.operations {
                path.insert(operation.method.key().into(), v3_operation(operation));
            }
            paths.insert(item.path, Value::Object(path));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": discovery::GIT_VERSION },
        "paths": paths,
        "components": {
            "schemas": schemas(&kinds, V3_PREFIX),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                },
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// SHA-256 of a document's compact JSON, in lower-case hex: the `hash`
/// query parameter of its `serverRelativeURL`.
pub fn content_hash(document: &Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, document.to_string().as_bytes());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A v3 document with its key and hash, built once.
#[derive(Debug)]
struct V3Document {
    path: String,
    document: Value,
    hash: String,
}

static V3_DOCUMENTS: LazyLock<Vec<V3Document>> = LazyLock::new(|| {
    discovery::group_versions()
        .into_iter()
        .map(|(group, version)| {
            let document = v3_document(group, version);
            V3Document {
                path: group_version_path(group, version),
                hash: content_hash(&document),
                document,
            }
        })
        .collect()
});

static V2_DOCUMENT: LazyLock<Value> = LazyLock::new(v2_document);

/// `/openapi/v3`: where the document of each group version is.
pub fn openapi_v3_root() -> Value {
    let paths: Map<String, Value> = V3_DOCUMENTS
        .iter()
        .map(|entry| {
            let url = format!("/openapi/v3/{}?hash={}", entry.path, entry.hash);
            (entry.path.clone(), json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// `/openapi/v3/{group_version_path}` (`api/v1`, `apis/apps/v1`; no leading
/// slash, no query), or `None` for a group version Flotilla does not serve.
pub fn openapi_v3(group_version_path: &str) -> Option<Value> {
    let path = group_version_path.trim_matches('/');
    V3_DOCUMENTS
        .iter()
        .find(|entry| entry.path == path)
        .map(|entry| entry.document.clone())
}

fn v2_schema(payload: &Payload) -> Value {
    match payload {
        Payload::Schema(name) => reference(V2_PREFIX, name),
        Payload::Text => json!({ "type": "string" }),
    }
}

fn v2_operation(operation: &Operation) -> Value {
    let mut parameters = Vec::new();
    if operation.method == Method::Patch {
        parameters.push(json!({
            "name": "body",
            "in": "body",
            "required": true,
            "schema": reference(V2_PREFIX, PATCH),
        }));
    }
    if let Some((payload, required)) = &operation.body {
        parameters.push(json!({
            "name": "body",
            "in": "body",
            "required": required,
            "schema": v2_schema(payload),
        }));
    }
    for name in operation.query {
        let (kind, description) = query_parameter(name);
        parameters.push(json!({
            "name": name,
            "in": "query",
            "description": description,
            "type": kind,
            "uniqueItems": true,
        }));
    }
    let mut responses = Map::new();
    for (code, payload) in &operation.responses {
        responses.insert(
            (*code).into(),
            json!({ "description": status_description(code), "schema": v2_schema(payload) }),
        );
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    let consumes: &[&str] = if operation.method == Method::Patch {
        PATCH_CONSUMES
    } else {
        &["*/*"]
    };
    let produces: &[&str] = match (&operation.responses.first(), operation.streams) {
        (Some((_, Payload::Text)), _) => &["text/plain"],
        (_, true) => &["application/json", "application/json;stream=watch"],
        _ => &["application/json"],
    };
    json!({
        "description": operation.description,
        "consumes": consumes,
        "produces": produces,
        "schemes": ["https"],
        "tags": [operation.tag],
        "operationId": operation.id,
        "parameters": parameters,
        "responses": responses,
        "x-kubernetes-action": operation.action,
        "x-kubernetes-group-version-kind": operation_gvk(operation),
    })
}

fn v2_document() -> Value {
    let mut paths = Map::new();
    for info in KINDS {
        for item in path_items(info) {
            let mut path = Map::new();
            let mut parameters: Vec<Value> = item
                .path_parameters
                .iter()
                .map(|(name, description)| {
                    json!({
                        "name": name,
                        "in": "path",
                        "description": description,
                        "required": true,
                        "type": "string",
                        "uniqueItems": true,
                    })
                })
                .collect();
            let (kind, description) = query_parameter("pretty");
            parameters.push(json!({
                "name": "pretty",
                "in": "query",
                "description": description,
                "type": kind,
                "uniqueItems": true,
            }));
            path.insert("parameters".into(), parameters.into());
            for operation in &item.operations {
                path.insert(operation.method.key().into(), v2_operation(operation));
            }
            paths.insert(item.path, Value::Object(path));
        }
    }
    let kinds: Vec<&'static KindInfo> = KINDS.iter().collect();
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": discovery::GIT_VERSION },
        "paths": paths,
        "definitions": schemas(&kinds, V2_PREFIX),
        "securityDefinitions": {
            "BearerToken": {
                "type": "apiKey",
                "description": "Bearer Token authentication",
                "name": "authorization",
                "in": "header",
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// `/openapi/v2` as JSON: every group version in one Swagger 2.0 document.
pub fn openapi_v2() -> Value {
    V2_DOCUMENT.clone()
}

/// The media type client-go asks for the v2 document in
/// (`discovery.OpenAPISchema`). It is not a valid media type for Go's
/// `mime.ParseMediaType` (the `@`), so kube-apiserver answers it with
/// `Content-Type: application/octet-stream`, and so must Flotilla.
pub const OPENAPI_V2_PROTOBUF_DEPRECATED: &str =
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The well-formed name of the same protobuf media type.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The `Content-Type` to answer `/openapi/v2` with in protobuf, or `None`
/// for JSON: protobuf when `accept` names one of its media types and not
/// `application/json` (kube-openapi's `handler.go` negotiation).
pub fn v2_protobuf_content_type(accept: &str) -> Option<&'static str> {
    let ranges: Vec<String> = accept
        .split(',')
        .map(|range| {
            range
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let named = |media: &str| ranges.iter().any(|range| range == media);
    if named("application/json") {
        None
    } else if named(OPENAPI_V2_PROTOBUF_DEPRECATED) {
        Some("application/octet-stream")
    } else if named(OPENAPI_V2_PROTOBUF) {
        Some(OPENAPI_V2_PROTOBUF)
    } else {
        None
    }
}

/// The response to `GET /openapi/v2`: protobuf or JSON as `Accept` asks.
pub fn respond_openapi_v2(headers: &HeaderMap) -> Response {
    let accept = discovery::accept(headers);
    let (content_type, body) = match v2_protobuf_content_type(&accept) {
        Some(content_type) => (content_type, openapi_v2_protobuf()),
        None => ("application/json", V2_DOCUMENT.to_string().into_bytes()),
    };
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (VARY, HeaderValue::from_static("Accept")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

static V2_PROTOBUF: LazyLock<Vec<u8>> = LazyLock::new(v2_protobuf);

/// `/openapi/v2` in protobuf: gnostic's `openapi.v2.Document`
/// (`github.com/google/gnostic-models/openapiv2/OpenAPIv2.proto`), holding
/// the paths, operations, non-body parameters, response codes and
/// extensions of [`openapi_v2`] and no definitions.
///
/// kubectl before 1.29 loads this document before every create or apply
/// and, when it cannot, fails; with it, the PATCH operations tell kubectl
/// 1.25–1.28 that the server validates fields, and older ones, finding no
/// schema for a kind, skip their client-side validation. No definitions,
/// because kubectl validates objects against any it finds, and these
/// describe only the envelope of each kind.
pub fn openapi_v2_protobuf() -> Vec<u8> {
    V2_PROTOBUF.clone()
}

/// A protobuf message being written: fields in the wire format.
#[derive(Debug, Default)]
struct Proto(Vec<u8>);

impl Proto {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    /// A string field; proto3 leaves empty strings out.
    fn string(&mut self, field: u32, value: &str) -> &mut Proto {
        if !value.is_empty() {
            self.bytes(field, value.as_bytes());
        }
        self
    }

    fn strings(&mut self, field: u32, values: &[&str]) -> &mut Proto {
        for value in values {
            self.bytes(field, value.as_bytes());
        }
        self
    }

    fn boolean(&mut self, field: u32, value: bool) -> &mut Proto {
        if value {
            self.key(field, 0);
            self.varint(1);
        }
        self
    }

    /// An embedded message, written even when empty (a oneof needs it).
    fn message(&mut self, field: u32, message: Proto) -> &mut Proto {
        self.bytes(field, &message.0);
        self
    }

    fn build(f: impl FnOnce(&mut Proto)) -> Proto {
        let mut message = Proto::default();
        f(&mut message);
        message
    }
}

/// `ParametersItem{parameter: Parameter{non_body_parameter: ...}}` of a
/// query (`path` false) or path parameter.
fn proto_parameter(name: &str, path: bool, kind: &str, description: &str) -> Proto {
    // QueryParameterSubSchema and PathParameterSubSchema share fields 1-4;
    // `type` is 6 and `unique_items` 20 in the one, 5 and 19 in the other.
    let sub_schema = Proto::build(|p| {
        p.boolean(1, path)
            .string(2, if path { "path" } else { "query" })
            .string(3, description)
            .string(4, name);
        if path {
            p.string(5, kind).boolean(19, true);
        } else {
            p.string(6, kind).boolean(20, true);
        }
    });
    let non_body = Proto::build(|p| {
        p.message(if path { 4 } else { 3 }, sub_schema);
    });
    let parameter = Proto::build(|p| {
        p.message(2, non_body);
    });
    Proto::build(|p| {
        p.message(1, parameter);
    })
}

/// `NamedAny{name, value: Any{yaml}}`; JSON is YAML.
fn proto_extension(name: &str, value: &Value) -> Proto {
    let any = Proto::build(|p| {
        p.string(2, &value.to_string());
    });
    Proto::build(|p| {
        p.string(1, name).message(2, any);
    })
}

fn proto_operation(operation: &Operation) -> Proto {
    let json = v2_operation(operation);
    let list = |key: &str| -> Vec<&str> {
        json[key]
            .as_array()
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let responses = Proto::build(|p| {
        for (code, _) in &operation.responses {
            let response = Proto::build(|r| {
                r.string(1, status_description(code));
            });
            let value = Proto::build(|v| {
                v.message(1, response);
            });
            p.message(
                1,
                Proto::build(|named| {
                    named.string(1, code).message(2, value);
                }),
            );
        }
    });
    Proto::build(|p| {
        p.strings(1, &[operation.tag.as_str()])
            .string(3, &operation.description)
            .string(5, &operation.id)
            .strings(6, &list("produces"))
            .strings(7, &list("consumes"));
        for name in operation.query {
            let (kind, description) = query_parameter(name);
            p.message(8, proto_parameter(name, false, kind, description));
        }
        p.message(9, responses).strings(10, &["https"]);
        p.message(
            13,
            proto_extension("x-kubernetes-action", &Value::from(operation.action)),
        );
        p.message(
            13,
            proto_extension("x-kubernetes-group-version-kind", &operation_gvk(operation)),
        );
    })
}

fn v2_protobuf() -> Vec<u8> {
    let mut items: Vec<PathItem> = KINDS.iter().flat_map(path_items).collect();
    items.sort_by(|a, b| a.path.cmp(&b.path));
    let paths = Proto::build(|p| {
        for item in &items {
            let path_item = Proto::build(|pi| {
                for operation in &item.operations {
                    let field = match operation.method {
                        Method::Get => 2,
                        Method::Put => 3,
                        Method::Post => 4,
                        Method::Delete => 5,
                        Method::Patch => 8,
                    };
                    pi.message(field, proto_operation(operation));
                }
                for (name, description) in &item.path_parameters {
                    pi.message(9, proto_parameter(name, true, "string", description));
                }
                let (kind, description) = query_parameter("pretty");
                pi.message(9, proto_parameter("pretty", false, kind, description));
            });
            p.message(
                2,
                Proto::build(|named| {
                    named.string(1, &item.path).message(2, path_item);
                }),
            );
        }
    });
    let info = Proto::build(|p| {
        p.string(1, "Kubernetes").string(2, discovery::GIT_VERSION);
    });
    Proto::build(|p| {
        p.string(1, "2.0").message(2, info).message(8, paths);
    })
    .0
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATION_METHODS: &[&str] = &["get", "put", "post", "patch", "delete"];

    /// Why kubectl's `supportsQueryParamV3` says no.
    #[derive(Debug, PartialEq, Eq)]
    enum Verdict {
        Supported,
        Unsupported,
        PathNotFound,
    }

    /// `supportsQueryParamV3` of `k8s.io/cli-runtime/pkg/resource/
    /// query_param_verifier_v3.go`: the first PATCH operation whose
    /// extension names the kind decides, by its own parameters.
    fn supports_query_param_v3(
        document: &Value,
        gvk: (&str, &str, &str),
        parameter: &str,
    ) -> Verdict {
        let paths = document["paths"].as_object().expect("paths");
        for path in paths.values() {
            let Some(patch) = path.get("patch") else {
                continue;
            };
            let extension = &patch["x-kubernetes-group-version-kind"];
            if (
                extension["group"].as_str(),
                extension["version"].as_str(),
                extension["kind"].as_str(),
            ) != (Some(gvk.0), Some(gvk.1), Some(gvk.2))
            {
                continue;
            }
            let found = patch["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == parameter && p["in"] == "query");
            return if found {
                Verdict::Supported
            } else {
                Verdict::Unsupported
            };
        }
        Verdict::PathNotFound
    }

    /// `gvkSupportsPatchOpenAPIV3` of `k8s.io/kubectl/pkg/cmd/apply/patcher.go`.
    fn supports_strategic_merge_patch_v3(document: &Value, gvk: (&str, &str, &str)) -> bool {
        for path in document["paths"].as_object().expect("paths").values() {
            let Some(patch) = path.get("patch") else {
                continue;
            };
            let extension = &patch["x-kubernetes-group-version-kind"];
            if extension == &json!({"group": gvk.0, "version": gvk.1, "kind": gvk.2}) {
                return patch
                    .get("requestBody")
                    .and_then(|body| body.get("content"))
                    .is_some_and(|content| {
                        content
                            .get("application/strategic-merge-patch+json")
                            .is_some()
                    });
            }
        }
        false
    }

    /// The document of a group version the way client-go's `openapi3.Root`
    /// finds it: through the root's `serverRelativeURL`.
    fn fetch_v3(group: &str, version: &str) -> (Value, String) {
        let key = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        let root = openapi_v3_root();
        let url = root["paths"][&key]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is in the root"));
        let (path, query) = url.split_once('?').expect("the URL has a query");
        let document = openapi_v3(path.strip_prefix("/openapi/v3/").expect("prefix"))
            .unwrap_or_else(|| panic!("{url} is served"));
        let hash = query.strip_prefix("hash=").expect("hash").to_owned();
        (document, hash)
    }

    #[test]
    fn kubectl_leaves_field_validation_to_the_server_for_every_kind() {
        for info in KINDS {
            let (document, _) = fetch_v3(info.group, info.version);
            // The document parses as kubectl reads it: JSON, version 3.
            assert_eq!(document["openapi"], "3.0.0");
            let gvk = (info.group, info.version, info.kind);
            assert_eq!(
                supports_query_param_v3(&document, gvk, "fieldValidation"),
                Verdict::Supported,
                "{}",
                info.kind
            );
            assert_eq!(
                supports_query_param_v3(&document, gvk, "dryRun"),
                Verdict::Supported,
                "{}",
                info.kind
            );
        }
    }

    #[test]
    fn a_kind_from_another_group_version_is_not_found() {
        let (apps, _) = fetch_v3("apps", "v1");
        assert_eq!(
            supports_query_param_v3(&apps, ("", "v1", "Pod"), "fieldValidation"),
            Verdict::PathNotFound
        );
        assert_eq!(openapi_v3("apis/policy/v1"), None);
        assert_eq!(openapi_v3("apis/apps"), None);
        assert_eq!(
            openapi_v3("/apis/apps/v1/").map(|d| d["openapi"].clone()),
            Some(json!("3.0.0"))
        );
    }

    #[test]
    fn every_patch_operation_lists_the_write_parameters() {
        // kubectl stops at the first matching PATCH in Go's random map
        // order, so the status subresource must answer the same.
        for (group, version) in discovery::group_versions() {
            let (document, _) = fetch_v3(group, version);
            for (path, item) in document["paths"].as_object().expect("paths") {
                let Some(patch) = item.get("patch") else {
                    continue;
                };
                let names: Vec<&str> = patch["parameters"]
                    .as_array()
                    .expect("parameters")
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert_eq!(
                    names,
                    ["dryRun", "fieldManager", "fieldValidation", "force"],
                    "{path}"
                );
            }
        }
    }

    #[test]
    fn kubectl_apply_builds_patches_from_its_compiled_in_types() {
        for info in KINDS {
            let (document, _) = fetch_v3(info.group, info.version);
            assert!(
                !supports_strategic_merge_patch_v3(
                    &document,
                    (info.group, info.version, info.kind)
                ),
                "{}",
                info.kind
            );
        }
        let v2 = openapi_v2();
        for item in v2["paths"].as_object().expect("paths").values() {
            if let Some(patch) = item.get("patch") {
                assert_eq!(patch["consumes"], json!(PATCH_CONSUMES));
            }
        }
    }

    #[test]
    fn object_paths_have_every_operation_kubectl_uses() {
        let cases = [
            (
                "",
                "v1",
                "/api/v1/namespaces/{namespace}/pods/{name}",
                "Pod",
                "NamespacedPod",
            ),
            (
                "apps",
                "v1",
                "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
                "Deployment",
                "NamespacedDeployment",
            ),
            ("", "v1", "/api/v1/nodes/{name}", "Node", "Node"),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
                "ClusterRole",
                "ClusterRole",
            ),
        ];
        for (group, version, path, kind, id) in cases {
            let (document, _) = fetch_v3(group, version);
            let item = &document["paths"][path];
            let gv = format!("{}{}", group_ident(group), upper_first(version));
            for (method, action, verb) in [
                ("get", "get", "read"),
                ("put", "put", "replace"),
                ("patch", "patch", "patch"),
                ("delete", "delete", "delete"),
            ] {
                let operation = &item[method];
                assert_eq!(operation["x-kubernetes-action"], action, "{method} {path}");
                assert_eq!(
                    operation["x-kubernetes-group-version-kind"],
                    json!({"group": group, "version": version, "kind": kind})
                );
                assert_eq!(operation["operationId"], format!("{verb}{gv}{id}"));
            }
            let path_parameters: Vec<&str> = item["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let expected: &[&str] = if path.contains("{namespace}") {
                &["name", "namespace"]
            } else {
                &["name"]
            };
            assert_eq!(path_parameters, expected, "{path}");
        }
    }

    #[test]
    fn collections_and_subresources_follow_kube_apiserver() {
        let (apps, _) = fetch_v3("apps", "v1");
        let paths = &apps["paths"];
        let all = &paths["/apis/apps/v1/deployments"];
        assert_eq!(
            all["get"]["operationId"],
            "listAppsV1DeploymentForAllNamespaces"
        );
        let collection = &paths["/apis/apps/v1/namespaces/{namespace}/deployments"];
        assert_eq!(collection["get"]["x-kubernetes-action"], "list");
        assert_eq!(
            collection["post"]["operationId"],
            "createAppsV1NamespacedDeployment"
        );
        assert_eq!(
            collection["delete"]["operationId"],
            "deleteAppsV1CollectionNamespacedDeployment"
        );
        let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["patch"]["operationId"],
            "patchAppsV1NamespacedDeploymentScale"
        );
        assert_eq!(
            scale["patch"]["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        assert_eq!(scale.get("delete"), None);
        let (core, _) = fetch_v3("", "v1");
        let log = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"];
        assert_eq!(log["get"]["operationId"], "readCoreV1NamespacedPodLog");
        assert!(log["get"]["responses"]["200"]["content"]["text/plain"].is_object());
        assert_eq!(
            log.as_object().map(|o| o.len()),
            Some(2),
            "parameters and get only"
        );
        let nodes = &core["paths"]["/api/v1/nodes"];
        assert_eq!(nodes["delete"]["operationId"], "deleteCoreV1CollectionNode");
        assert_eq!(
            core["paths"].get("/api/v1/namespaces/{namespace}/nodes"),
            None
        );
    }

    #[test]
    fn every_operation_names_its_action_and_kind() {
        let mut documents: Vec<Value> = discovery::group_versions()
            .into_iter()
            .map(|(group, version)| fetch_v3(group, version).0)
            .collect();
        documents.push(openapi_v2());
        for document in &documents {
            for (path, item) in document["paths"].as_object().expect("paths") {
                for method in OPERATION_METHODS {
                    let Some(operation) = item.get(*method) else {
                        continue;
                    };
                    assert!(
                        operation["x-kubernetes-action"].is_string(),
                        "{method} {path}"
                    );
                    assert!(
                        operation["x-kubernetes-group-version-kind"]["kind"].is_string(),
                        "{method} {path}"
                    );
                    assert!(operation["operationId"].is_string(), "{method} {path}");
                }
            }
        }
    }

    fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let mut documents: Vec<(Value, &str, &str)> = discovery::group_versions()
            .into_iter()
            .map(|(group, version)| (fetch_v3(group, version).0, V3_PREFIX, "/components/schemas"))
            .collect();
        documents.push((openapi_v2(), V2_PREFIX, "/definitions"));
        for (document, prefix, schemas) in &documents {
            let mut found = Vec::new();
            references(document, &mut found);
            assert!(!found.is_empty());
            for target in found {
                let name = target
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("{target}"));
                let schema = document.pointer(schemas).and_then(|s| s.get(name));
                assert!(schema.is_some(), "{target} resolves");
            }
        }
    }

    #[test]
    fn kind_schemas_carry_their_group_version_kind_for_explain() {
        for info in KINDS {
            let (document, _) = fetch_v3(info.group, info.version);
            let schema = &document["components"]["schemas"][schema_name(info)];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"],
                json!([{"group": info.group, "kind": info.kind, "version": info.version}])
            );
        }
        assert_eq!(schema_name(&KINDS[2]), "io.k8s.api.core.v1.Pod");
    }

    #[test]
    fn the_hash_is_the_served_documents_and_changes_with_it() {
        for (group, version) in discovery::group_versions() {
            let (document, hash) = fetch_v3(group, version);
            assert_eq!(hash, content_hash(&document));
            assert_eq!(hash.len(), 64);
            assert!(
                hash.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert_eq!(
                content_hash(&v3_document(group, version)),
                hash,
                "stable across builds"
            );
            let mut changed = document.clone();
            changed["info"]["version"] = "v0.0.0".into();
            assert_ne!(content_hash(&changed), hash);
        }
        let (core, core_hash) = fetch_v3("", "v1");
        let (apps, apps_hash) = fetch_v3("apps", "v1");
        assert_ne!(core, apps);
        assert_ne!(core_hash, apps_hash);
    }

    #[test]
    fn accept_headers_choose_the_v2_encoding() {
        let cases = [
            (
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                Some("application/octet-stream"),
            ),
            (
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                Some(OPENAPI_V2_PROTOBUF),
            ),
            ("application/json", None),
            (
                "application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                None,
            ),
            ("", None),
            ("*/*", None),
        ];
        for (accept, expected) in cases {
            assert_eq!(v2_protobuf_content_type(accept), expected, "{accept}");
        }
    }

    /// A decoded protobuf field: a varint or the bytes of a length-delimited one.
    #[derive(Debug)]
    enum Field<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(bytes: &[u8], at: &mut usize) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let byte = bytes[*at];
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        value
    }

    /// The fields of one message, in order.
    fn decode(bytes: &[u8]) -> Vec<(u64, Field<'_>)> {
        let mut fields = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let key = read_varint(bytes, &mut at);
            let field = match key & 7 {
                0 => Field::Varint(read_varint(bytes, &mut at)),
                2 => {
                    let len = read_varint(bytes, &mut at) as usize;
                    at += len;
                    Field::Bytes(&bytes[at - len..at])
                }
                other => panic!("unexpected wire type {other}"),
            };
            fields.push((key >> 3, field));
        }
        fields
    }

    fn messages(bytes: &[u8], number: u64) -> Vec<&[u8]> {
        decode(bytes)
            .into_iter()
            .filter_map(|(field, value)| match value {
                Field::Bytes(bytes) if field == number => Some(bytes),
                _ => None,
            })
            .collect()
    }

    fn string(bytes: &[u8], number: u64) -> String {
        messages(bytes, number)
            .first()
            .map(|b| String::from_utf8(b.to_vec()).expect("UTF-8"))
            .unwrap_or_default()
    }

    /// `supportsQueryParam` of `k8s.io/cli-runtime/pkg/resource/
    /// query_param_verifier.go` over the decoded gnostic document.
    fn supports_query_param_v2(
        document: &[u8],
        gvk: (&str, &str, &str),
        parameter: &str,
    ) -> Verdict {
        let paths = messages(document, 8)[0];
        for named in messages(paths, 2) {
            let Some(patch) = messages(messages(named, 2)[0], 8).first().copied() else {
                continue;
            };
            let matches = messages(patch, 13).into_iter().any(|extension| {
                let yaml = string(messages(extension, 2)[0], 2);
                string(extension, 1) == "x-kubernetes-group-version-kind"
                    && serde_json::from_str::<Value>(&yaml).ok()
                        == Some(json!({"group": gvk.0, "version": gvk.1, "kind": gvk.2}))
            });
            if !matches {
                continue;
            }
            let found = messages(patch, 8).into_iter().any(|item| {
                let non_body = messages(messages(item, 1)[0], 2);
                non_body.first().is_some_and(|non_body| {
                    messages(non_body, 3)
                        .first()
                        .is_some_and(|query| string(query, 4) == parameter)
                })
            });
            return if found {
                Verdict::Supported
            } else {
                Verdict::Unsupported
            };
        }
        Verdict::PathNotFound
    }

    #[test]
    fn the_v2_protobuf_tells_older_kubectl_the_server_validates_fields() {
        let document = openapi_v2_protobuf();
        assert_eq!(string(&document, 1), "2.0");
        assert!(messages(&document, 9).is_empty(), "no definitions");
        for info in KINDS {
            let gvk = (info.group, info.version, info.kind);
            assert_eq!(
                supports_query_param_v2(&document, gvk, "fieldValidation"),
                Verdict::Supported,
                "{}",
                info.kind
            );
        }
        assert_eq!(
            supports_query_param_v2(
                &document,
                ("policy", "v1", "PodDisruptionBudget"),
                "fieldValidation"
            ),
            Verdict::PathNotFound
        );
    }

    #[test]
    fn the_v2_protobuf_has_every_path_of_the_json_document() {
        let document = openapi_v2_protobuf();
        let paths = messages(&document, 8)[0];
        let names: Vec<String> = messages(paths, 2)
            .into_iter()
            .map(|named| string(named, 1))
            .collect();
        let json_names: Vec<String> = openapi_v2()["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        assert_eq!(names, json_names);
        // Proto3 writes `true` as the varint 1 and leaves `false` out.
        let first = messages(messages(paths, 2)[0], 2)[0];
        let get = messages(first, 2)[0];
        let parameter = messages(messages(messages(get, 8)[0], 1)[0], 2)[0];
        let query = messages(parameter, 3)[0];
        assert!(matches!(decode(query).last(), Some((20, Field::Varint(1)))));
    }
}
