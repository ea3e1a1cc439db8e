//! Every error the API server answers, and the Kubernetes `Status` body and
//! HTTP code each one becomes — in this one place, so that a handler only
//! says what went wrong (`ApiError::NotFound { .. }`) and kubectl prints it
//! as it would print kube-apiserver's.
//!
//! Wording and reasons mirror
//! `k8s.io/apimachinery/pkg/api/errors/errors.go` (`NewNotFound`,
//! `NewAlreadyExists`, `NewConflict`, `NewInvalid`, `NewForbidden`, ...).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_shared::model::KindInfo;
use flotilla_shared::validation::ErrorList;
use serde_json::{Value, json};

/// What a resource is called in messages: `pods`, `deployments.apps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn of(info: &KindInfo) -> Self {
        GroupResource {
            group: info.group.to_owned(),
            resource: info.plural.to_owned(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// An API request that failed, by Kubernetes' reasons.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{message}")]
    Forbidden {
        message: String,
        resource: Option<(GroupResource, String)>,
    },
    #[error("{resource} {name:?} not found")]
    NotFound {
        resource: GroupResource,
        name: String,
    },
    /// A path or resource the server does not serve.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    #[error("{resource} {name:?} already exists")]
    AlreadyExists {
        resource: GroupResource,
        name: String,
    },
    #[error("Operation cannot be fulfilled on {resource} {name:?}: {detail}")]
    Conflict {
        resource: GroupResource,
        name: String,
        detail: String,
    },
    /// Admission refused the object: every field error at once (422).
    #[error("{kind} {name:?} is invalid: {errors}")]
    Invalid {
        /// `Deployment.apps`, `Pod`.
        kind: String,
        group: String,
        name: String,
        errors: ErrorList,
    },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType { accepted: String },
    #[error("the server was unable to respond with a content type that the client supports")]
    NotAcceptable,
    #[error("the request is too large: {0}")]
    TooLarge(String),
    /// A list or watch from a compacted revision (410 `Expired`).
    #[error("{0}")]
    Expired(String),
    /// The store could not answer in time; the outcome of a write may be
    /// unknown (504 `Timeout`): read before retrying.
    #[error("{0}")]
    Timeout(String),
    /// No leader, a replica shutting down (503 `ServiceUnavailable`): retry.
    #[error("{0}")]
    Unavailable(String),
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

impl ApiError {
    /// A `Status` of 422 for `object`'s field errors.
    pub fn invalid(info: &KindInfo, name: &str, errors: ErrorList) -> Self {
        let kind = if info.group.is_empty() {
            info.kind.to_owned()
        } else {
            format!("{}.{}", info.kind, info.group)
        };
        ApiError::Invalid {
            kind,
            group: info.group.to_owned(),
            name: name.to_owned(),
            errors,
        }
    }

    pub fn not_found(info: &KindInfo, name: &str) -> Self {
        ApiError::NotFound {
            resource: GroupResource::of(info),
            name: name.to_owned(),
        }
    }

    /// The update lost a race: Kubernetes' "the object has been modified" conflict.
    pub fn modified(info: &KindInfo, name: &str) -> Self {
        ApiError::Conflict {
            resource: GroupResource::of(info),
            name: name.to_owned(),
            detail: "the object has been modified; please apply your changes to the latest version and try again".to_owned(),
        }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } | ApiError::NoSuchPath => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Expired(_) => StatusCode::GONE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `metav1.StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotFound { .. } | ApiError::NoSuchPath => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::NotAcceptable => "NotAcceptable",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::Expired(_) => "Expired",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        let named = |resource: &GroupResource, name: &str| {
            let mut details = json!({ "name": name, "kind": resource.resource });
            if !resource.group.is_empty() {
                details["group"] = json!(resource.group);
            }
            details
        };
        match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => Some(named(resource, name)),
            ApiError::Forbidden {
                resource: Some((resource, name)),
                ..
            } => Some(named(resource, name)),
            ApiError::Invalid {
                kind,
                group,
                name,
                errors,
            } => {
                let causes: Vec<Value> = errors
                    .iter()
                    .map(|e| {
                        json!({
                            "reason": e.kind.reason(),
                            "message": e.message(),
                            "field": e.field.as_str(),
                        })
                    })
                    .collect();
                let kind = kind.split('.').next().unwrap_or(kind);
                let mut details = json!({ "name": name, "kind": kind, "causes": causes });
                if !group.is_empty() {
                    details["group"] = json!(group);
                }
                Some(details)
            }
            _ => None,
        }
    }

    /// The `Status` object kubectl reads.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        let mut response = (self.code(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// A `Status` of success (deletecollection of nothing, a delete answered without the object).
pub fn success(details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

#[cfg(test)]
mod tests {
    use flotilla_shared::model::KindInfo;
    use flotilla_shared::validation::{FieldError, Path};

    use super::*;

    #[test]
    fn invalid_objects_list_every_cause_with_its_field() {
        let info = KindInfo::find("apps/v1", "Deployment").unwrap();
        let mut errors = ErrorList::new();
        errors.push(FieldError::required(
            &Path::new("spec")
                .child("template")
                .child("spec")
                .child("containers")
                .index(0)
                .child("image"),
            "",
        ));
        errors.push(FieldError::invalid(
            &Path::new("metadata").child("name"),
            "Web",
            "must be lowercase",
        ));
        let status = ApiError::invalid(info, "Web", errors).status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["message"],
            r#"Deployment.apps "Web" is invalid: [spec.template.spec.containers[0].image: Required value, metadata.name: Invalid value: "Web": must be lowercase]"#
        );
        assert_eq!(status["details"]["kind"], "Deployment");
        assert_eq!(status["details"]["group"], "apps");
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
        assert_eq!(
            status["details"]["causes"][0]["field"],
            "spec.template.spec.containers[0].image"
        );
        assert_eq!(
            status["details"]["causes"][1]["reason"],
            "FieldValueInvalid"
        );
    }

    #[test]
    fn not_found_and_conflicts_name_the_resource_as_kubernetes_does() {
        let pods = KindInfo::find("v1", "Pod").unwrap();
        let deployments = KindInfo::find("apps/v1", "Deployment").unwrap();
        let status = ApiError::not_found(pods, "web-0").status();
        assert_eq!(status["message"], r#"pods "web-0" not found"#);
        assert_eq!(
            (status["code"].as_u64(), status["details"]["kind"].as_str()),
            (Some(404), Some("pods"))
        );
        let status = ApiError::modified(deployments, "web").status();
        assert_eq!(
            status["message"],
            r#"Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again"#
        );
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(
            ApiError::Expired("too old resource version: 5 (40)".into()).status()["code"],
            410
        );
    }
}
