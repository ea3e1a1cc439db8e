//! DELETE of one object and of a collection; the deletion rules are in
//! [`crate::api::deletion`].

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Ctx;
use super::list::read_page;
use crate::api::deletion::{self, DeleteOptions};
use crate::api::status::ApiError;
use crate::api::storage::{Stored, decode};

/// The DeleteOptions of a request: its body, or its query.
fn read_options(ctx: &Ctx<'_>, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut options = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    let params = &ctx.params;
    if options.grace_period_seconds.is_none()
        && let Some(text) = params.get("gracePeriodSeconds")
    {
        options.grace_period_seconds =
            Some(text.parse().map_err(|_| {
                ApiError::BadRequest(format!("invalid gracePeriodSeconds {text:?}"))
            })?);
    }
    if options.propagation_policy.is_none() {
        options.propagation_policy = params.get("propagationPolicy").map(str::to_owned);
    }
    if options.orphan_dependents.is_none() && params.get("orphanDependents").is_some() {
        options.orphan_dependents = Some(params.flag("orphanDependents"));
    }
    if params.dry_run()? {
        options.dry_run = vec!["All".into()];
    }
    for mode in &options.dry_run {
        if mode != "All" {
            return Err(ApiError::BadRequest(format!(
                "invalid dryRun {mode:?}: the only supported value is All"
            )));
        }
    }
    if options.grace_period_seconds.is_some_and(|g| g < 0) {
        return Err(ApiError::BadRequest(
            "gracePeriodSeconds must not be negative".into(),
        ));
    }
    Ok(options)
}

pub async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let options = read_options(ctx, body)?;
    let current = super::update::read_current(ctx, None).await?;
    let (object, _) = deletion::delete(&ctx.api.storage, ctx.kind, current, &options).await?;
    Ok(ctx.object(StatusCode::OK, &object))
}

pub async fn delete_collection(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let options = read_options(ctx, body)?;
    let page = read_page(ctx).await?;
    let mut deleted = Vec::new();
    for item in page.items {
        let current = Stored {
            object: decode(&item.object.value, item.object.resource_version)?,
            revision: item.object.resource_version,
        };
        match deletion::delete(&ctx.api.storage, ctx.kind, current, &options).await {
            Ok((object, _)) => deleted.push(serde_json::to_value(&object).unwrap_or(Value::Null)),
            // Deleted by someone else meanwhile: that is what was asked.
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "kind": format!("{}List", ctx.kind.kind),
        "apiVersion": ctx.kind.api_version,
        "metadata": { "resourceVersion": page.revision.to_string() },
        "items": deleted,
    });
    Ok(ctx.json(StatusCode::OK, &body))
}
