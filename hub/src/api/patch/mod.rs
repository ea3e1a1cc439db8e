//! PATCH requests: what kube-apiserver does to an object's JSON for the
//! three patch types kubectl and controllers send.
//!
//! - `application/json-patch+json`: RFC 6902 operations, applied with the
//!   `json-patch` crate. As in Kubernetes (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go,
//!   `jsonPatcher.applyJSPatch`), a body that does not decode is a 400, more
//!   than 10 000 operations a 413, and an operation that fails (a `test`
//!   that does not match, a path that does not exist) a 422.
//! - `application/merge-patch+json`: RFC 7396, also from `json-patch`. Any
//!   JSON is accepted as RFC 7396 says, except `null` (evanphx/json-patch's
//!   "Invalid JSON Patch", a 400); a body that is not an object replaces the
//!   whole object, which is then not an object: a 422, as Kubernetes'
//!   decoding of the result would give.
//! - `application/strategic-merge-patch+json`: Kubernetes' own format
//!   (the `strategic` module, a port of k8s.io/apimachinery/pkg/util/strategicpatch),
//!   using the patch strategies of k8s.io/api's struct tags ([`schema`]).
//!   `kubectl apply`, `kubectl set image`, `kubectl rollout restart` and
//!   `kubectl cordon` send it.
//!
//! `application/apply-patch+yaml` (server-side apply) is not supported:
//! [`PatchType::from_content_type`] answers `None` and the server replies
//! 415 Unsupported Media Type.
//!
//! [`apply_patch`] is pure: it takes the stored object and the request body
//! and returns the patched JSON, which the caller then decodes, admits and
//! validates like an update. It keeps `apiVersion` and `kind` (restoring
//! them if a patch removed them, refusing a patch that changes them); the
//! caller still checks that `metadata.name` and `metadata.namespace` match
//! the URL, as Kubernetes' `checkName` does.

pub mod schema;
mod strategic;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

/// Kubernetes' limit on the operations of one JSON patch (`maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The patch formats the API server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7396 JSON merge patch.
    Merge,
    /// Kubernetes strategic merge patch.
    StrategicMerge,
}

impl PatchType {
    /// Every accepted patch type, in the order discovery lists them.
    pub const ALL: [PatchType; 3] = [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge];

    /// From the request's Content-Type: `application/json-patch+json`,
    /// `application/merge-patch+json`, `application/strategic-merge-patch+json`
    /// (parameters such as `;charset=utf-8` ignored, case-insensitive). `None`
    /// for anything else (the server answers 415 for
    /// `application/apply-patch+yaml` and others).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        PatchType::ALL
            .into_iter()
            .find(|patch_type| media_type.eq_ignore_ascii_case(patch_type.content_type()))
    }

    /// The media type a client sends for this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
        }
    }
}

impl fmt::Display for PatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatchType::Json => "JSON",
            PatchType::Merge => "JSON merge",
            PatchType::StrategicMerge => "strategic merge",
        })
    }
}

/// Why a patch could not be applied. Each message reads as the `message` of
/// a Kubernetes `Status`; [`PatchError::status_code`] gives its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not JSON at all.
    #[error("the {patch_type} patch is not valid JSON: {reason}")]
    InvalidJson {
        patch_type: PatchType,
        reason: String,
    },

    /// A strategic merge patch that is not a JSON object, or a merge patch of `null`.
    #[error("the {patch_type} patch must be a JSON object, not {found}")]
    PatchNotAnObject {
        patch_type: PatchType,
        found: &'static str,
    },

    /// JSON, but not a list of RFC 6902 operations.
    #[error("the JSON patch is not a list of operations: {reason}")]
    InvalidJsonPatch { reason: String },

    #[error("the allowed maximum operations in a JSON patch is {limit}, got {count}")]
    TooManyOperations { count: usize, limit: usize },

    /// An operation failed: a `test` that did not match, a path that does not exist.
    #[error("the JSON patch could not be applied: {reason}")]
    JsonPatchFailed { reason: String },

    /// The patch turned the object into something that is not an object.
    #[error("the patched {kind} would be {found}, not an object")]
    ResultNotAnObject { kind: String, found: &'static str },

    #[error("a patch may not change {field} from {from} to {to}")]
    TypeChanged {
        field: &'static str,
        from: String,
        to: String,
    },

    /// `$patch` with a value other than the ones allowed where it appears.
    #[error("{path}: unknown patch type {value} in $patch (allowed: {allowed})")]
    UnknownDirective {
        path: String,
        value: String,
        allowed: &'static str,
    },

    #[error("{path}: merging lists cannot yet be specified in the patch ($patch: merge)")]
    MergeDirectiveInList { path: String },

    /// An element of a list merged by key lacks the key.
    #[error("{path}: {element} does not contain declared merge key {key:?}")]
    MissingMergeKey {
        path: String,
        key: String,
        element: String,
    },

    #[error("{path}: cannot merge a list of objects that has no merge key")]
    MergeKeyUndeclared { path: String },

    #[error("{path}: lists of lists are not supported")]
    ListOfLists { path: String },

    #[error("{path}: list element types are not identical")]
    MixedListElements { path: String },

    #[error("{path}: invalid patch format of $retainKeys: {reason}")]
    InvalidRetainKeys { path: String, reason: String },

    #[error("{path}: invalid patch format of $setElementOrder: {reason}")]
    InvalidSetElementOrder { path: String, reason: String },

    #[error("{path}: invalid patch format of $deleteFromPrimitiveList: {reason}")]
    InvalidDeleteFromPrimitiveList { path: String, reason: String },
}

impl PatchError {
    /// The HTTP status Kubernetes answers with: 413 for too many JSON patch
    /// operations; 422 for a JSON patch operation that fails, a result that
    /// does not decode as the kind (not an object, another kind) and lists of
    /// lists (`interpretStrategicMergePatchError`); 400 for the rest.
    /// Kubernetes answers 500 for some malformed strategic merge patches (a
    /// missing merge key, an unknown `$patch`) because their Go errors are not
    /// classified; a malformed request is the client's, so 400 here.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::TooManyOperations { .. } => 413,
            PatchError::JsonPatchFailed { .. }
            | PatchError::ResultNotAnObject { .. }
            | PatchError::TypeChanged { .. }
            | PatchError::ListOfLists { .. } => 422,
            _ => 400,
        }
    }
}

/// Applies `patch` (the raw request body) to `original` (the current object
/// as stored JSON, with apiVersion/kind/metadata) for the kind named `kind`
/// (as in `flotilla_shared::model::KINDS`, e.g. `"Deployment"`). A kind
/// without a schema gets only `metadata`'s strategic merge rules.
pub fn apply_patch(
    kind: &str,
    patch_type: PatchType,
    original: &Value,
    patch: &[u8],
) -> Result<Value, PatchError> {
    let body: Value = serde_json::from_slice(patch).map_err(|error| PatchError::InvalidJson {
        patch_type,
        reason: error.to_string(),
    })?;
    let patched = match patch_type {
        PatchType::Json => json_patch_of(original, body)?,
        PatchType::Merge => merge_patch_of(original, &body)?,
        PatchType::StrategicMerge => strategic_patch_of(kind, original, body)?,
    };
    keep_type(kind, original, patched)
}

fn json_patch_of(original: &Value, body: Value) -> Result<Value, PatchError> {
    let operations: json_patch::Patch =
        serde_json::from_value(body).map_err(|error| PatchError::InvalidJsonPatch {
            reason: error.to_string(),
        })?;
    if operations.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: operations.0.len(),
            limit: MAX_JSON_PATCH_OPERATIONS,
        });
    }
    let mut patched = original.clone();
    json_patch::patch(&mut patched, &operations).map_err(|error| PatchError::JsonPatchFailed {
        reason: error.to_string(),
    })?;
    Ok(patched)
}

fn merge_patch_of(original: &Value, body: &Value) -> Result<Value, PatchError> {
    if body.is_null() {
        return Err(PatchError::PatchNotAnObject {
            patch_type: PatchType::Merge,
            found: "null",
        });
    }
    let mut patched = original.clone();
    json_patch::merge(&mut patched, body);
    Ok(patched)
}

fn strategic_patch_of(kind: &str, original: &Value, body: Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = body else {
        return Err(PatchError::PatchNotAnObject {
            patch_type: PatchType::StrategicMerge,
            found: strategic::json_type(&body),
        });
    };
    let ty = schema::for_kind(kind).unwrap_or(&schema::METADATA_ONLY);
    let original = original.as_object().cloned().unwrap_or_default();
    strategic::apply(original, patch, ty).map(Value::Object)
}

/// The patched object must still be an object of the same apiVersion and
/// kind; a removed apiVersion or kind comes back from the original, as
/// Kubernetes' decoding into the kind's type does.
fn keep_type(kind: &str, original: &Value, patched: Value) -> Result<Value, PatchError> {
    let Value::Object(mut patched) = patched else {
        return Err(PatchError::ResultNotAnObject {
            kind: kind.to_owned(),
            found: strategic::json_type(&patched),
        });
    };
    for field in ["apiVersion", "kind"] {
        let Some(before) = original.get(field) else {
            continue;
        };
        match patched.get(field) {
            None | Some(Value::Null) => {
                patched.insert(field.to_owned(), before.clone());
            }
            Some(after) if after != before => {
                return Err(PatchError::TypeChanged {
                    field,
                    from: before.to_string(),
                    to: after.to_string(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(Value::Object(patched))
}
