//! PUT: replace an object (or its status), and the commit step that update,
//! patch and scale share: strategy, update validation, compare-and-swap.

use axum::http::StatusCode;
use axum::response::Response;
use flotilla_shared::model::Object;

use super::{Ctx, parse_resource_version};
use crate::api::status::ApiError;
use crate::api::storage::{Stored, encode};
use crate::api::strategy;
use crate::replica::Consistency;

pub async fn update(ctx: &mut Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let mut object = ctx.decode(body)?;
    ctx.place(&mut object)?;
    check_name(ctx, &object)?;
    let precondition = match object.metadata().resource_version.as_str() {
        "" => None,
        text => Some(parse_resource_version(text)?),
    };
    let current = read_current(ctx, precondition).await?;
    if precondition.is_some_and(|rv| rv != current.revision) {
        return Err(ApiError::modified(ctx.kind, &ctx.info.name));
    }
    let (code, object) = commit(ctx, current, object).await?;
    Ok(ctx.object(code, &object))
}

/// The name in a body must be the name in the URL.
pub fn check_name(ctx: &Ctx<'_>, object: &Object) -> Result<(), ApiError> {
    let name = &object.metadata().name;
    if *name != ctx.info.name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            ctx.info.name
        )));
    }
    Ok(())
}

/// The object as it is now. Read from this replica; read again at the
/// latest committed state when this replica may be behind the caller.
pub async fn read_current(ctx: &Ctx<'_>, seen: Option<u64>) -> Result<Stored, ApiError> {
    let storage = &ctx.api.storage;
    let (kind, namespace, name) = (ctx.kind, &ctx.info.namespace, &ctx.info.name);
    let local = storage
        .get(kind, namespace, name, Consistency::Stale)
        .await?;
    let behind = match (&local, seen) {
        (None, _) => true,
        (Some(stored), Some(seen)) => stored.revision < seen,
        (Some(_), None) => false,
    };
    let current = if behind {
        storage
            .get(kind, namespace, name, Consistency::Linearizable)
            .await?
    } else {
        local
    };
    current.ok_or_else(|| ApiError::not_found(kind, name))
}

/// Applies the kind's update strategy to `new`, validates the update and
/// writes it if `current` is still current. Answers the code and the object
/// as stored (unchanged, without a write, when the update changes nothing).
pub async fn commit(
    ctx: &Ctx<'_>,
    current: Stored,
    mut new: Object,
) -> Result<(StatusCode, Object), ApiError> {
    match (ctx.info.subresource.as_str(), &current.object, &mut new) {
        ("status", old, new) => strategy::prepare_for_status_update(old, new),
        ("finalize", Object::Namespace(old), Object::Namespace(new)) => {
            strategy::prepare_for_namespace_finalize(old, new)
        }
        (_, old, new) => strategy::prepare_for_update(old, new),
    }
    if let Object::Secret(secret) = &mut new {
        secret.merge_string_data();
    }
    strategy::validate_update(&current.object, &new)
        .map_err(|errors| ApiError::invalid(ctx.kind, &ctx.info.name, errors))?;
    new.metadata_mut().resource_version = current.revision.to_string();
    if encode(&new) == encode(&current.object) || ctx.params.dry_run()? {
        return Ok((StatusCode::OK, new));
    }
    // The last finalizer removed from an object whose deletion waits only on
    // finalizers: the update completes the deletion.
    let meta = new.metadata();
    let old_meta = current.object.metadata();
    if meta.finalizers.is_empty()
        && !super::delete::holds_content(&new)
        && old_meta.deletion_timestamp.is_some()
        && old_meta.deletion_grace_period_seconds == Some(0)
    {
        ctx.api
            .storage
            .delete(ctx.kind, &meta.namespace, &meta.name, current.revision)
            .await?;
        return Ok((StatusCode::OK, new));
    }
    let revision = ctx
        .api
        .storage
        .update(ctx.kind, &new, current.revision)
        .await?;
    new.metadata_mut().resource_version = revision.to_string();
    Ok((StatusCode::OK, new))
}
