//! LIST: the objects of a kind, by namespace, label and field selectors, in
//! pages (`limit`/`continue`) that all read one revision.

use std::num::NonZeroUsize;
use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use flotilla_shared::selector::{FieldSelector, Selector};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Ctx, parse_resource_version};
use crate::api::server::wants_table;
use crate::api::status::ApiError;
use crate::api::storage::decode;
use crate::api::table;
use crate::replica::Consistency;
use crate::store::{Continue, ListAt, ListPage, ListRequest};

/// The label and field selectors of a list or watch; a request on a named
/// object selects `metadata.name` too.
pub fn selectors(ctx: &Ctx<'_>) -> Result<(Selector, FieldSelector), ApiError> {
    let labels = match ctx.params.get("labelSelector") {
        Some(text) => Selector::parse(text)
            .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?,
        None => Selector::everything(),
    };
    let mut field_text = ctx.params.get("fieldSelector").unwrap_or("").to_owned();
    if !ctx.info.name.is_empty() {
        if !field_text.is_empty() {
            field_text.push(',');
        }
        field_text.push_str(&format!("metadata.name={}", ctx.info.name));
    }
    let fields = FieldSelector::parse(&field_text)
        .map_err(|e| ApiError::BadRequest(format!("invalid field selector: {e}")))?;
    fields
        .check_kind(ctx.kind.kind)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok((labels, fields))
}

/// The continue token: where the next page starts, at which revision.
#[derive(Debug, Serialize, Deserialize)]
struct Token {
    rv: u64,
    ns: String,
    name: String,
}

fn encode_token(next: &Continue) -> String {
    let token = Token {
        rv: next.revision,
        ns: next.namespace.clone(),
        name: next.name.clone(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_token(text: &str) -> Result<Continue, ApiError> {
    let invalid = || ApiError::BadRequest(format!("invalid continue token {text:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| invalid())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok(Continue {
        revision: token.rv,
        namespace: token.ns,
        name: token.name,
    })
}

/// Builds the store request of a list, and reads it.
pub async fn read_page(ctx: &Ctx<'_>) -> Result<ListPage, ApiError> {
    let (labels, fields) = selectors(ctx)?;
    let mut request = ListRequest::new(ctx.kind.kind);
    request.namespace = (!ctx.info.namespace.is_empty()).then(|| ctx.info.namespace.clone());
    request.labels = labels;
    request.fields = fields;
    request.limit = ctx
        .params
        .number("limit")?
        .and_then(|n| NonZeroUsize::new(usize::try_from(n).unwrap_or(usize::MAX)));
    let storage = &ctx.api.storage;
    if let Some(token) = ctx.params.get("continue").filter(|t| !t.is_empty()) {
        request.at = ListAt::Continue(decode_token(token)?);
        return storage
            .list(request, Consistency::Stale)
            .await
            .map_err(|e| match e {
                ApiError::Expired(_) => ApiError::Expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                ),
                other => other,
            });
    }
    match ctx.params.get("resourceVersion").filter(|v| !v.is_empty()) {
        None => storage.list(request, Consistency::Linearizable).await,
        Some("0") => storage.list(request, Consistency::Stale).await,
        Some(text) => {
            let revision = parse_resource_version(text)?;
            let exact = match ctx.params.get("resourceVersionMatch") {
                None | Some("" | "NotOlderThan") => false,
                Some("Exact") => true,
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "invalid resourceVersionMatch {other:?}: must be Exact or NotOlderThan"
                    )));
                }
            };
            // A revision this replica has not applied yet: catch up first.
            let consistency = if storage.revision().await? < revision {
                Consistency::Linearizable
            } else {
                Consistency::Stale
            };
            if exact {
                request.at = ListAt::Revision(revision);
                storage.list(request, consistency).await
            } else {
                let page = storage.list(request, consistency).await?;
                if page.revision < revision {
                    return Err(ApiError::Timeout(format!(
                        "Too large resource version: {revision}, current: {}",
                        page.revision
                    )));
                }
                Ok(page)
            }
        }
    }
}

pub async fn list(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    let page = read_page(ctx).await?;
    let mut metadata = json!({ "resourceVersion": page.revision.to_string() });
    if let Some(next) = &page.next {
        metadata["continue"] = json!(encode_token(next));
    }
    let objects = page
        .items
        .iter()
        .map(|item| decode(&item.object.value, item.object.resource_version))
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = if wants_table(&ctx.headers) {
        table::table(ctx.kind, &objects, ctx.include_object(), SystemTime::now())
    } else {
        json!({
            "kind": format!("{}List", ctx.kind.kind),
            "apiVersion": ctx.kind.api_version,
            "items": objects.iter().map(|o| serde_json::to_value(o).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        })
    };
    body["metadata"] = metadata;
    Ok(ctx.json(StatusCode::OK, &body))
}
