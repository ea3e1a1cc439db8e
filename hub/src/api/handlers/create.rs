//! POST: create an object (with `generateName`), after admission ([`crate::api::write::create`]).

use axum::http::StatusCode;
use axum::response::Response;

use super::Ctx;
use crate::api::status::ApiError;
use crate::api::write;

pub async fn create(ctx: &mut Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let mut object = ctx.decode(body)?;
    ctx.place(&mut object)?;
    let dry_run = ctx.params.dry_run()?;
    write::check_namespace(
        &ctx.api.storage,
        ctx.kind,
        &ctx.info.namespace,
        &object.metadata().name,
    )
    .await?;
    let created = write::create(&ctx.api.storage, ctx.kind, object, dry_run).await?;
    Ok(ctx.object(StatusCode::CREATED, &created))
}
