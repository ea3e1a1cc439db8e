//! PATCH: JSON patch, merge patch or strategic merge patch of an object (or
//! its status). A patch that does not name a resourceVersion is retried on
//! a concurrent change, as kube-apiserver retries it: the caller asked for
//! a change, not for a particular version.

use axum::http::header;
use axum::response::Response;
use flotilla_shared::manifest;

use super::Ctx;
use super::update::{check_name, commit, read_current};
use crate::api::patch::{PatchType, apply_patch};
use crate::api::status::ApiError;

/// How many times a patch is re-applied after losing a race.
const ATTEMPTS: usize = 5;

/// The patch type a request's Content-Type names, or 415.
pub fn patch_type(ctx: &Ctx<'_>) -> Result<PatchType, ApiError> {
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    PatchType::from_content_type(content_type).ok_or_else(|| ApiError::UnsupportedMediaType {
        accepted: "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json".into(),
    })
}

pub async fn patch(ctx: &mut Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let patch_type = patch_type(ctx)?;
    let mode = ctx.params.field_validation()?;
    let mut seen = None;
    for _ in 0..ATTEMPTS {
        let current = read_current(ctx, seen).await?;
        seen = Some(current.revision);
        let original =
            serde_json::to_value(&current.object).map_err(|e| ApiError::Internal(e.to_string()))?;
        let patched = apply_patch(ctx.kind.kind, patch_type, &original, body)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let decoded = manifest::decode_object(patched, mode)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        ctx.warnings.clear();
        let mut object = ctx.accept_decoded(decoded)?;
        ctx.place(&mut object)?;
        check_name(ctx, &object)?;
        // A patch that sets a resourceVersion makes it a precondition.
        let asked = object.metadata().resource_version.clone();
        if asked != current.revision.to_string() {
            return Err(ApiError::modified(ctx.kind, &ctx.info.name));
        }
        match commit(ctx, current, object).await {
            Err(ApiError::Conflict { .. }) => continue,
            Ok(object) => return Ok(ctx.object(axum::http::StatusCode::OK, &object)),
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::modified(ctx.kind, &ctx.info.name))
}
