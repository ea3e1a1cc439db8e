//! The paths that are not resources: version, discovery, OpenAPI, health
//! and metrics.

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

use super::json_response;
use crate::api::discovery;
use crate::api::openapi;
use crate::api::server::{Api, respond};
use crate::api::status::ApiError;

pub async fn non_resource(
    api: &Api,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if *method != Method::GET && *method != Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let path = path.trim_end_matches('/');
    let ok = |value: Option<serde_json::Value>| {
        value
            .map(|v| json_response(StatusCode::OK, &v))
            .ok_or(ApiError::NoSuchPath)
    };
    match path {
        "/version" => ok(Some(discovery::version())),
        "/api" => Ok(discovery::respond_api(headers)),
        "/apis" => Ok(discovery::respond_apis(headers)),
        "/healthz" | "/livez" => Ok(respond(StatusCode::OK, "text/plain", "ok")),
        "/readyz" => {
            api.storage.revision().await?;
            Ok(respond(StatusCode::OK, "text/plain", "ok"))
        }
        "/metrics" => Ok(respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            api.metrics.render(),
        )),
        "/openapi/v2" => Ok(openapi::respond_openapi_v2(headers)),
        "/openapi/v3" => ok(Some(openapi::openapi_v3_root())),
        _ => {
            if let Some(rest) = path.strip_prefix("/openapi/v3/") {
                return ok(openapi::openapi_v3(rest));
            }
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match parts.as_slice() {
                ["api", version] => ok(discovery::api_resource_list("", version)),
                ["apis", group] => ok(discovery::api_group(group)),
                ["apis", group, version] => ok(discovery::api_resource_list(group, version)),
                _ => Err(ApiError::NoSuchPath),
            }
        }
    }
}
