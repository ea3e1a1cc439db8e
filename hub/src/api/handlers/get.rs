//! GET of one object (and of its `status` subresource, which is the whole object).

use axum::http::StatusCode;
use axum::response::Response;

use super::Ctx;
use crate::api::status::ApiError;
use crate::api::storage::Stored;
use crate::replica::Consistency;

/// `resourceVersion=0` may be served from this replica as it is ("any");
/// anything else reads the latest committed state (Kubernetes' default).
pub fn consistency(resource_version: Option<&str>) -> Consistency {
    match resource_version {
        Some("0") => Consistency::Stale,
        _ => Consistency::Linearizable,
    }
}

/// The object the request names, at the consistency it asks for; 404 when there is none.
pub async fn read(ctx: &Ctx<'_>) -> Result<Stored, ApiError> {
    ctx.api
        .storage
        .get(
            ctx.kind,
            &ctx.info.namespace,
            &ctx.info.name,
            consistency(ctx.params.get("resourceVersion")),
        )
        .await?
        .ok_or_else(|| ApiError::not_found(ctx.kind, &ctx.info.name))
}

pub async fn get(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    Ok(ctx.object(StatusCode::OK, &read(ctx).await?.object))
}
