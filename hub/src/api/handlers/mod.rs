//! The request handlers, one file per verb: what happens between an
//! authorized request and the store.

mod create;
mod delete;
pub mod devices;
mod get;
mod list;
pub mod logs;
mod non_resource;
mod patch;
mod scale;
mod update;
mod watch;

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_shared::manifest::{self, Decoded, FieldValidation};
use flotilla_shared::model::{KindInfo, Object};
use serde_json::Value;

pub use non_resource::non_resource;

use super::request::RequestInfo;
use super::server::{Api, wants_table};
use super::status::ApiError;
use super::strategy;
use super::table::{self, IncludeObject};

/// The query parameters the handlers read, as sent (Kubernetes' names).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
        Ok(Params { pairs })
    }

    /// The last value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean flag: `true` or `1`.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }

    /// `dryRun=All`: admit the request but store nothing.
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "invalid dryRun {other:?}: the only supported value is All"
            ))),
        }
    }

    /// `fieldValidation`: Strict, Warn or Ignore; a request without it is
    /// treated as Warn, as kube-apiserver does.
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.get("fieldValidation") {
            None | Some("") => Ok(FieldValidation::Warn),
            Some(value) => value
                .parse()
                .map_err(|e: manifest::DecodeError| ApiError::BadRequest(e.to_string())),
        }
    }

    /// A non-negative integer parameter.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "invalid {name} {v:?}: must be a non-negative integer"
                    ))
                })
            })
            .transpose()
    }
}

/// The flag `name` of a raw query string.
pub fn query_flag(query: Option<&str>, name: &str) -> bool {
    Params::parse(query).is_ok_and(|p| p.flag(name))
}

/// The value of `name` in a raw query string.
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    Params::parse(query).ok()?.get(name).map(str::to_owned)
}

/// One resource request on its way through the handlers.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub api: &'a Api,
    pub kind: &'static KindInfo,
    pub info: RequestInfo,
    pub params: Params,
    pub headers: HeaderMap,
    /// Warnings for the `Warning` response header (unknown fields under `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

impl Ctx<'_> {
    /// The response for one object: JSON, or a one-row Table when asked for.
    pub fn object(&self, code: StatusCode, object: &Object) -> Response {
        let value = if wants_table(&self.headers) {
            let include = self.include_object();
            table::table(
                self.kind,
                std::slice::from_ref(object),
                include,
                SystemTime::now(),
            )
        } else {
            serde_json::to_value(object).unwrap_or(Value::Null)
        };
        self.json(code, &value)
    }

    pub fn include_object(&self) -> IncludeObject {
        self.params
            .get("includeObject")
            .and_then(IncludeObject::parse)
            .unwrap_or(IncludeObject::Metadata)
    }

    /// A JSON response carrying this request's warnings.
    pub fn json(&self, code: StatusCode, value: &Value) -> Response {
        let mut response = json_response(code, value);
        for warning in &self.warnings {
            let text = format!("299 - {:?}", warning.replace('"', "'"));
            if let Ok(value) = HeaderValue::from_str(&text) {
                response.headers_mut().append(header::WARNING, value);
            }
        }
        response
    }

    /// Decodes a request body as an object of this request's kind.
    pub fn decode(&mut self, body: &[u8]) -> Result<Object, ApiError> {
        let mode = self.params.field_validation()?;
        let decoded = decode_body(&self.headers, body, mode)?;
        self.accept_decoded(decoded)
    }

    /// Checks a decoded object is of this request's kind and keeps its warnings.
    pub fn accept_decoded(&mut self, decoded: Decoded) -> Result<Object, ApiError> {
        let info = decoded.object.kind_info();
        if info.api_version != self.kind.api_version {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                info.api_version, self.kind.api_version
            )));
        }
        if info.kind != self.kind.kind {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                info.kind, self.kind.kind
            )));
        }
        self.warnings.extend(decoded.warnings);
        Ok(decoded.object)
    }

    /// The namespace an object of this request belongs in: the path's, and
    /// the body's must agree with it.
    pub fn place(&self, object: &mut Object) -> Result<(), ApiError> {
        let meta = object.metadata_mut();
        if !self.kind.namespaced {
            meta.namespace.clear();
            return Ok(());
        }
        if !meta.namespace.is_empty() && meta.namespace != self.info.namespace {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        meta.namespace = self.info.namespace.clone();
        Ok(())
    }
}

/// A JSON response.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = (code, Body::from(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Decodes a JSON or YAML request body into an object.
pub fn decode_body(
    headers: &HeaderMap,
    body: &[u8],
    mode: FieldValidation,
) -> Result<Decoded, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let decoded = match media {
        "application/json" | "" | "*/*" => manifest::decode_json(body, mode),
        "application/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::BadRequest("the YAML body is not UTF-8".into()))?;
            manifest::decode_yaml_documents(text, mode).and_then(|mut documents| {
                if documents.len() == 1 {
                    Ok(documents.remove(0))
                } else {
                    Err(manifest::DecodeError::UnexpectedList {
                        kind: format!("a YAML stream of {} documents", documents.len()),
                    })
                }
            })
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json, application/yaml".into(),
            });
        }
    };
    decoded.map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Reads the whole body, refusing one over the configured limit.
pub async fn read_body(api: &Api, body: Body) -> Result<bytes::Bytes, ApiError> {
    let limit = api.config.max_body_bytes;
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(ApiError::TooLarge(format!(
            "the request body exceeds the limit of {limit} bytes"
        )));
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::TooLarge(format!(
            "the request body exceeds the limit of {limit} bytes"
        ))
    })
}

/// Parses a resourceVersion as the store numbers revisions.
pub fn parse_resource_version(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid resource version {text:?}: must be a number"
        ))
    })
}

/// A random version-4 UUID for `metadata.uid`.
pub fn new_uid() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    // The system RNG failing is not recoverable in any useful way here;
    // fall back to the clock so that uids stay distinct.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Dispatches an authorized resource request.
pub async fn resource(api: &Api, info: RequestInfo, request: Request) -> Response {
    match dispatch(api, info, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(api: &Api, info: RequestInfo, request: Request) -> Result<Response, ApiError> {
    let kind = KindInfo::find_by_plural(&info.group, &info.version, &info.resource)
        .ok_or(ApiError::NoSuchPath)?;
    let params = Params::parse(request.uri().query())?;
    let query = request.uri().query().map(str::to_owned);
    let (parts, body) = request.into_parts();
    let verb = info.verb;
    let subresource = info.subresource.clone();
    if kind.namespaced && info.namespace.is_empty() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::NoSuchPath);
    }
    let mut ctx = Ctx {
        api,
        kind,
        info,
        params,
        headers: parts.headers,
        warnings: Vec::new(),
    };
    let status = strategy::has_status_subresource(kind.kind);
    let scale = strategy::has_scale_subresource(kind.kind);
    match (verb, subresource.as_str()) {
        ("get", "") => get::get(&ctx).await,
        ("get", "status") if status => get::get(&ctx).await,
        ("list", "") => list::list(&ctx).await,
        ("watch", "") => watch::watch(&ctx).await,
        ("create", "") => {
            let body = read_body(api, body).await?;
            create::create(&mut ctx, &body).await
        }
        ("update", "") | ("update", "status") if subresource.is_empty() || status => {
            let body = read_body(api, body).await?;
            update::update(&mut ctx, &body).await
        }
        ("patch", "") | ("patch", "status") if subresource.is_empty() || status => {
            let body = read_body(api, body).await?;
            patch::patch(&mut ctx, &body).await
        }
        ("delete", "") => {
            let body = read_body(api, body).await?;
            delete::delete(&ctx, &body).await
        }
        ("deletecollection", "") => {
            let body = read_body(api, body).await?;
            delete::delete_collection(&ctx, &body).await
        }
        ("update", "finalize") if kind.kind == "Namespace" => {
            let body = read_body(api, body).await?;
            update::update(&mut ctx, &body).await
        }
        ("get", "scale") if scale => scale::get(&ctx).await,
        ("get", "log") if kind.kind == "Pod" => logs::pod_log(&ctx, query.as_deref()).await,
        ("update", "scale") | ("patch", "scale") if scale => {
            let body = read_body(api, body).await?;
            scale::write(&mut ctx, &body).await
        }
        _ => Err(ApiError::NoSuchPath),
    }
}
