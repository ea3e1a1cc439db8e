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

use super::json_response;
use crate::api::server::Api;
use crate::api::status::{ApiError, GroupResource};
use crate::api::user::UserInfo;
use crate::api::write;
use crate::gateway::enroll::{
    DeviceIssuer, Refusal, Renewal, Revocations, SigningRequest, may_enroll, may_renew,
};
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

/// The largest body the device paths read: a CSR and a certificate are a
/// few KiB, and the renewal path is open to anyone.
const DEVICE_BODY_LIMIT: usize = 64 * 1024;

async fn body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, DEVICE_BODY_LIMIT)
        .await
        .map_err(|_| ApiError::TooLarge(format!("the body exceeds {DEVICE_BODY_LIMIT} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("the body: {e}")))
}

/// The Node named `node`, as stored.
async fn node(api: &Api, node: &str) -> Result<Option<crate::api::storage::Stored>, ApiError> {
    api.storage
        .get(kind("Node", "v1")?, "", node, Consistency::Linearizable)
        .await
}

fn created(node: &Node) -> Option<std::time::SystemTime> {
    crate::api::time::parse_time(&node.metadata.creation_timestamp.as_ref()?.0)
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

/// Enrolls a device: issues its certificate, then creates its Node with
/// the key's hash. The same key again (a retry whose answer was lost) gets
/// a certificate again; another key for an existing Node is refused, and so
/// is a revoked device whose Node the operator did not delete.
pub async fn enroll(api: &Api, user: &UserInfo, request: Body) -> Result<Response, ApiError> {
    let issuer = issuer(api)?;
    let EnrollBody { node: name, csr } = body(request).await?;
    flotilla_shared::wire::topics::validate_node_name(&name)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let request = SigningRequest::parse(&csr).map_err(refused)?;
    let revocations = revocations(api).await?;
    may_enroll(&revocations, &name, None).map_err(refused)?;
    // Signed first: a request the CA refuses leaves no Node behind.
    let certificate = issuer
        .issue(&name, &request, &revocations)
        .map_err(refused)?;
    let nodes = kind("Node", "v1")?;
    let mut wanted = Node::default();
    wanted.metadata.name = name.clone();
    wanted
        .metadata
        .annotations
        .insert(ENROLLED_KEY_ANNOTATION.into(), request.key_sha256.clone());
    match write::create(&api.storage, nodes, Object::Node(wanted), false).await {
        Ok(_) => {}
        Err(ApiError::AlreadyExists { .. }) => {
            let existing = match node(api, &name).await?.map(|s| s.object) {
                Some(Object::Node(n)) => n,
                _ => return Err(ApiError::Unavailable(format!("node {name} changed; retry"))),
            };
            may_enroll(&revocations, &name, created(&existing)).map_err(refused)?;
            if existing.metadata.annotations.get(ENROLLED_KEY_ANNOTATION)
                != Some(&request.key_sha256)
            {
                return Err(ApiError::Conflict {
                    resource: GroupResource::of(nodes),
                    name: name.clone(),
                    detail: format!(
                        "node {name} is already enrolled with another key (delete the Node to enroll it again)"
                    ),
                });
            }
        }
        Err(e) => return Err(e),
    }
    tracing::info!(node = %name, user = %user.name, key = %request.key_sha256, "device enrolled");
    Ok(issued(&certificate))
}

/// Renews a device's certificate for a new key, signed by its current one:
/// the signatures first, then the revocations, then the key the Node
/// records (moved to the new key).
pub async fn renew(api: &Api, request: Body) -> Result<Response, ApiError> {
    let issuer = issuer(api)?;
    let renewal: RenewBody = body(request).await?;
    let refuse = |refusal: Refusal| {
        tracing::warn!(error = %refusal, "device certificate renewal refused");
        refused(refusal)
    };
    let Renewal {
        node: name,
        request,
        current_key_sha256,
        not_before,
    } = issuer
        .check_renewal(&renewal, std::time::SystemTime::now())
        .map_err(refuse)?;
    let revocations = revocations(api).await?;
    if revocations.is_revoked(&name, not_before) {
        return Err(refuse(Refusal::Forbidden(format!("{name} is revoked"))));
    }
    // The Node may change meanwhile (the gateway writes it): read again
    // and retry a few times rather than fail the device.
    for attempt in 1.. {
        let Some(stored) = node(api, &name).await? else {
            return Err(refuse(Refusal::Forbidden(format!(
                "{name} is not enrolled (its Node was deleted): enroll it again"
            ))));
        };
        let Object::Node(mut current) = stored.object.clone() else {
            return Err(ApiError::Internal(format!("{name} is not a Node")));
        };
        let pinned = current.metadata.annotations.get(ENROLLED_KEY_ANNOTATION);
        let repin = may_renew(
            pinned.map(String::as_str),
            &current_key_sha256,
            &request.key_sha256,
        )
        .map_err(refuse)?;
        if !repin {
            break;
        }
        current
            .metadata
            .annotations
            .insert(ENROLLED_KEY_ANNOTATION.into(), request.key_sha256.clone());
        let written = write::commit(
            &api.storage,
            kind("Node", "v1")?,
            stored,
            Object::Node(current),
            write::Part::Main,
            false,
        )
        .await;
        match written {
            Ok(_) => break,
            Err(ApiError::Conflict { .. }) if attempt < 5 => continue,
            Err(e) => return Err(e),
        }
    }
    let certificate = issuer
        .issue(&name, &request, &revocations)
        .map_err(refused)?;
    tracing::info!(node = %name, key = %request.key_sha256, "device certificate renewed");
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
