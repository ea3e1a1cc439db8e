//! The `scale` subresource of Deployments and ReplicaSets: an
//! `autoscaling/v1` Scale read from and written into the object's
//! `spec.replicas` (`kubectl scale`).

use axum::http::StatusCode;
use axum::response::Response;
use flotilla_shared::model::{LabelSelector, Object};
use flotilla_shared::selector::Selector;
use serde_json::{Value, json};

use super::Ctx;
use super::patch::patch_type;
use super::update::{commit, read_current};
use crate::api::patch::apply_patch;
use crate::api::status::ApiError;
use crate::api::storage::Stored;

/// `(spec.replicas, status.replicas, spec.selector)` of a scalable object.
fn replicas(object: &Object) -> Option<(i32, i32, Option<&LabelSelector>)> {
    match object {
        Object::Deployment(d) => Some((
            d.spec.replicas.unwrap_or(1),
            d.status.replicas,
            d.spec.selector.as_ref(),
        )),
        Object::ReplicaSet(rs) => Some((
            rs.spec.replicas.unwrap_or(1),
            rs.status.replicas,
            rs.spec.selector.as_ref(),
        )),
        _ => None,
    }
}

fn set_replicas(object: &mut Object, replicas: i32) {
    match object {
        Object::Deployment(d) => d.spec.replicas = Some(replicas),
        Object::ReplicaSet(rs) => rs.spec.replicas = Some(replicas),
        _ => {}
    }
}

/// The Scale of `object`.
fn scale_of(object: &Object) -> Result<Value, ApiError> {
    let (spec, status, selector) =
        replicas(object).ok_or_else(|| ApiError::Internal("not a scalable kind".into()))?;
    let meta = object.metadata();
    let selector = selector
        .and_then(|s| Selector::from_label_selector(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut metadata = json!({
        "name": meta.name,
        "namespace": meta.namespace,
        "uid": meta.uid,
        "resourceVersion": meta.resource_version,
    });
    if let Some(created) = &meta.creation_timestamp {
        metadata["creationTimestamp"] = json!(created.0);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": { "replicas": spec },
        "status": { "replicas": status, "selector": selector },
    }))
}

pub async fn get(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let stored = super::get::read(ctx).await?;
    Ok(ctx.json(StatusCode::OK, &scale_of(&stored.object)?))
}

/// PUT or PATCH of the Scale: only `spec.replicas` is taken from it.
pub async fn write(ctx: &mut Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let current: Stored = read_current(ctx, None).await?;
    let scale = scale_of(&current.object)?;
    let asked: Value = if ctx.info.verb == "patch" {
        apply_patch("Scale", patch_type(ctx)?, &scale, body)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid Scale: {e}")))?
    };
    if let Some(rv) = asked
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && !rv.is_empty()
        && rv != current.revision.to_string()
    {
        return Err(ApiError::modified(ctx.kind, &ctx.info.name));
    }
    let replicas = asked
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
        .ok_or_else(|| {
            let mut errors = flotilla_shared::validation::ErrorList::new();
            errors.push(flotilla_shared::validation::FieldError::invalid_raw(
                &flotilla_shared::validation::Path::new("spec").child("replicas"),
                asked.pointer("/spec/replicas").unwrap_or(&Value::Null),
                "must be greater than or equal to 0",
            ));
            ApiError::Invalid {
                kind: "Scale.autoscaling".into(),
                group: "autoscaling".into(),
                name: ctx.info.name.clone(),
                errors,
            }
        })?;
    let mut object = current.object.clone();
    set_replicas(&mut object, i32::try_from(replicas).unwrap_or(i32::MAX));
    // The main resource's strategy applies (status kept, generation bumped).
    let saved_subresource = std::mem::take(&mut ctx.info.subresource);
    let result = commit(ctx, current, object).await;
    ctx.info.subresource = saved_subresource;
    let object = result?;
    Ok(ctx.json(StatusCode::OK, &scale_of(&object)?))
}
