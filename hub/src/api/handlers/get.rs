//! GET of one object (and of its `status` subresource, which is the whole object).

use axum::http::StatusCode;
use axum::response::Response;

use super::Ctx;
use crate::api::status::ApiError;
use crate::replica::Consistency;

/// `resourceVersion=0` may be served from this replica as it is ("any");
/// anything else reads the latest committed state (Kubernetes' default).
pub fn consistency(resource_version: Option<&str>) -> Consistency {
    match resource_version {
        Some("0") => Consistency::Stale,
        _ => Consistency::Linearizable,
    }
}

pub async fn get(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let stored = ctx
        .api
        .storage
        .get(
            ctx.kind,
            &ctx.info.namespace,
            &ctx.info.name,
            consistency(ctx.params.get("resourceVersion")),
        )
        .await?
        .ok_or_else(|| ApiError::not_found(ctx.kind, &ctx.info.name))?;
    Ok(ctx.object(StatusCode::OK, &stored.object))
}
