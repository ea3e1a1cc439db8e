//! The device paths: enrollment (`POST /flotilla/v1/enroll`, a bootstrap
//! token or any user RBAC lets `post` there) and renewal (`POST
//! /flotilla/v1/renew`, authenticated by the signature in the body). What
//! is checked is in [`crate::gateway::enroll`]; this is the store side.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use flotilla_shared::enroll::{
    ENROLLED_KEY_ANNOTATION, EnrollBody, IssuedBody, REVOCATIONS_CONFIGMAP, REVOCATIONS_NAMESPACE,
    RenewBody,
};
use flotilla_shared::model::{KindInfo, Node, Object};
use serde::de::DeserializeOwned;

use super::{json_response, read_body};
use crate::api::server::Api;
use crate::api::status::{ApiError, GroupResource};
use crate::api::user::UserInfo;
use crate::api::write;
use crate::gateway::enroll::{DeviceIssuer, Refusal, Revocations, SigningRequest};
use crate::replica::Consistency;

fn kind(name: &str, api_version: &str) -> Result<&'static KindInfo, ApiError> {
    KindInfo::find(api_version, name).ok_or_else(|| ApiError::Internal(format!("no kind {name}")))
}

fn issuer(api: &Api) -> Result<&DeviceIssuer, ApiError> {
    api.devices.as_deref().ok_or_else(|| {
        ApiError::Unavailable("this replica does not issue device certificates".into())
    })
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Malformed(message) => ApiError::BadRequest(message),
        Refusal::Forbidden(message) => ApiError::Forbidden {
            message,
            resource: None,
        },
    }
}

async fn body<T: DeserializeOwned>(api: &Api, body: Body) -> Result<T, ApiError> {
    let bytes = read_body(api, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("the body: {e}")))
}

fn issued(certificate: &crate::pki::Certificate) -> Response {
    let body = IssuedBody {
        certificate: certificate.pem().to_owned(),
    };
    json_response(
        StatusCode::OK,
        &serde_json::to_value(body).unwrap_or_default(),
    )
}

/// Enrolls a device: creates its Node, recording the key, and issues its
/// certificate. The same key again (a retry whose answer was lost) gets a
/// certificate again; another key for an existing Node is refused.
pub async fn enroll(api: &Api, user: &UserInfo, request: Body) -> Result<Response, ApiError> {
    let issuer = issuer(api)?;
    let EnrollBody { node, csr } = body(api, request).await?;
    let request = SigningRequest::parse(&csr).map_err(refused)?;
    // The name is checked before anything is written.
    flotilla_shared::wire::topics::validate_node_name(&node)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let nodes = kind("Node", "v1")?;
    let mut wanted = Node::default();
    wanted.metadata.name = node.clone();
    wanted
        .metadata
        .annotations
        .insert(ENROLLED_KEY_ANNOTATION.into(), request.key_sha256.clone());
    match write::create(&api.storage, nodes, Object::Node(wanted), false).await {
        Ok(_) => {}
        Err(ApiError::AlreadyExists { .. }) => {
            let existing = api
                .storage
                .get(nodes, "", &node, Consistency::Linearizable)
                .await?
                .map(|s| s.object);
            let same_key = matches!(&existing, Some(Object::Node(n))
                if n.metadata.annotations.get(ENROLLED_KEY_ANNOTATION) == Some(&request.key_sha256));
            if !same_key {
                return Err(ApiError::Conflict {
                    resource: GroupResource::of(nodes),
                    name: node.clone(),
                    detail: format!(
                        "node {node} is already enrolled with another key (delete the Node to enroll it again)"
                    ),
                });
            }
        }
        Err(e) => return Err(e),
    }
    let certificate = issuer
        .issue(&node, &request, &revocations(api).await?)
        .map_err(refused)?;
    tracing::info!(%node, user = %user.name, key = %request.key_sha256, "device enrolled");
    Ok(issued(&certificate))
}

/// Renews a device's certificate for a new key, signed by its current one.
pub async fn renew(api: &Api, request: Body) -> Result<Response, ApiError> {
    let issuer = issuer(api)?;
    let renewal: RenewBody = body(api, request).await?;
    let revocations = revocations(api).await?;
    let (node, request) = issuer
        .check_renewal(&renewal, &revocations, std::time::SystemTime::now())
        .map_err(|refusal| {
            tracing::warn!(error = %refusal, "device certificate renewal refused");
            refused(refusal)
        })?;
    let certificate = issuer
        .issue(&node, &request, &revocations)
        .map_err(refused)?;
    tracing::info!(%node, key = %request.key_sha256, "device certificate renewed");
    Ok(issued(&certificate))
}

/// The revocations as the store has them now (a linearizable read: a
/// revocation just written applies).
pub async fn revocations(api: &Api) -> Result<Revocations, ApiError> {
    let stored = api
        .storage
        .get(
            kind("ConfigMap", "v1")?,
            REVOCATIONS_NAMESPACE,
            REVOCATIONS_CONFIGMAP,
            Consistency::Linearizable,
        )
        .await?;
    Ok(match stored.map(|s| s.object) {
        Some(Object::ConfigMap(config_map)) => Revocations::from_config_map(&config_map),
        _ => Revocations::default(),
    })
}
