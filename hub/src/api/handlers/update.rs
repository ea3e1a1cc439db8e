//! PUT: replace an object (or its status), and the commit step that update,
//! patch and scale share: strategy, update validation, compare-and-swap.

use axum::http::StatusCode;
use axum::response::Response;
use flotilla_shared::model::Object;

use super::{Ctx, parse_resource_version};
use crate::api::status::ApiError;
use crate::api::storage::Stored;
use crate::api::write::{self, Part};
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
    let object = commit(ctx, current, object).await?;
    Ok(ctx.object(StatusCode::OK, &object))
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

/// [`write::commit`] for the part of the object this request names.
pub async fn commit(ctx: &Ctx<'_>, current: Stored, new: Object) -> Result<Object, ApiError> {
    let part = match ctx.info.subresource.as_str() {
        "status" => Part::Status,
        "finalize" => Part::Finalize,
        _ => Part::Main,
    };
    write::commit(
        &ctx.api.storage,
        ctx.kind,
        current,
        new,
        part,
        ctx.params.dry_run()?,
    )
    .await
}
