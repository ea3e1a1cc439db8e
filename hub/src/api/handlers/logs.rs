//! `GET /api/v1/namespaces/{ns}/pods/{name}/log` (`kubectl logs`): the
//! container's log, fetched from its device over the device link
//! ([`crate::gateway::logs`]) and streamed as it arrives (`follow=true`
//! keeps the response open until the container ends or the client leaves).
//!
//! The device is reached through the gateway that serves it: on this
//! replica when its endpoint holds the device's connection (or this
//! replica leads, with an external broker); otherwise the request is
//! forwarded, once, to the replica named on the Node
//! ([`GATEWAY_ANNOTATION`]), with the replica's administrator certificate —
//! the user was authenticated and authorized here, as kube-apiserver does
//! before it dials a kubelet.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_shared::model::Object;
use flotilla_shared::wire::LogRequest;
use hyper_util::rt::TokioIo;

use super::Ctx;
use crate::api::status::ApiError;
use crate::gateway::logs::{GATEWAY_ANNOTATION, LogError, LogStream, Logs};
use crate::replica::Consistency;

/// Set on a forwarded request: serve it here or fail, never forward again.
const FORWARDED: &str = "flotillaForwarded";
/// How long the device has to answer before the request fails.
const FIRST_CHUNK: Duration = Duration::from_secs(30);

/// What the API needs to reach device logs.
#[derive(Debug, Clone)]
pub struct DeviceLogs {
    pub logs: Logs,
    /// This replica's API address, as the gateways record it.
    pub own_address: String,
    /// The replica's administrator client configuration, for forwarding.
    pub forward_tls: Arc<rustls::ClientConfig>,
}

/// The options of `kubectl logs`, checked as kube-apiserver checks
/// `PodLogOptions`.
fn options(ctx: &Ctx<'_>) -> Result<LogRequest, ApiError> {
    let params = &ctx.params;
    let bad = |message: String| ApiError::BadRequest(message);
    let number = |name: &str, min: i64| -> Result<Option<u64>, ApiError> {
        let Some(text) = params.get(name) else {
            return Ok(None);
        };
        let value: i64 = text
            .parse()
            .map_err(|_| bad(format!("{name}: {text:?} is not an integer")))?;
        if value < min {
            return Err(bad(format!(
                "{name}: must be {} (got {value})",
                if min == 0 {
                    "non-negative".to_owned()
                } else {
                    format!("greater than {}", min - 1)
                }
            )));
        }
        Ok(Some(value as u64))
    };
    let tail_lines = number("tailLines", 0)?;
    let limit_bytes = number("limitBytes", 1)?;
    let mut since_seconds = number("sinceSeconds", 1)?;
    if let Some(text) = params.get("sinceTime") {
        if since_seconds.is_some() {
            return Err(bad(
                "at most one of sinceTime or sinceSeconds may be specified".into(),
            ));
        }
        let at = crate::api::time::parse_time(text)
            .ok_or_else(|| bad(format!("sinceTime: {text:?} is not an RFC 3339 time")))?;
        let ago = std::time::SystemTime::now()
            .duration_since(at)
            .unwrap_or_default();
        since_seconds = Some(ago.as_secs().max(1));
    }
    Ok(LogRequest {
        request_id: 0,
        pod_uid: String::new(),
        container: params.get("container").unwrap_or_default().to_owned(),
        follow: params.flag("follow"),
        previous: params.flag("previous"),
        timestamps: params.flag("timestamps"),
        tail_lines,
        since_seconds,
        limit_bytes,
    })
}

/// Serves a pod's log.
pub async fn pod_log(ctx: &Ctx<'_>, query: Option<&str>) -> Result<Response, ApiError> {
    let mut request = options(ctx)?;
    let name = &ctx.info.name;
    let stored = ctx
        .api
        .storage
        .get(
            ctx.kind,
            &ctx.info.namespace,
            name,
            Consistency::Linearizable,
        )
        .await?
        .ok_or_else(|| ApiError::not_found(ctx.kind, name))?;
    let Object::Pod(pod) = stored.object else {
        return Err(ApiError::Internal(format!("{name} is not a pod")));
    };
    let names: Vec<&str> = pod
        .spec
        .init_containers
        .iter()
        .chain(&pod.spec.containers)
        .map(|c| c.name.as_str())
        .collect();
    if request.container.is_empty() {
        match pod.spec.containers.as_slice() {
            [only] => request.container = only.name.clone(),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                )));
            }
        }
    } else if !names.contains(&request.container.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "container {} is not valid for pod {name}",
            request.container
        )));
    }
    let node = pod.spec.node_name.clone();
    if node.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    request.pod_uid = pod.metadata.uid.clone();
    let device_logs = ctx
        .api
        .device_logs
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("this replica serves no device logs".into()))?;
    match device_logs.logs.open(&node, request).await {
        Ok(stream) => respond(stream).await,
        Err(LogError::NotHere(_)) if !ctx.params.flag(FORWARDED) => {
            let nodes = flotilla_shared::model::KindInfo::find("v1", "Node")
                .ok_or_else(|| ApiError::Internal("no Node kind".into()))?;
            let gateway = match ctx
                .api
                .storage
                .get(nodes, "", &node, Consistency::Linearizable)
                .await?
                .map(|s| s.object)
            {
                Some(Object::Node(n)) => n.metadata.annotations.get(GATEWAY_ANNOTATION).cloned(),
                _ => None,
            };
            match gateway {
                Some(address) if address != device_logs.own_address => {
                    let path = format!(
                        "/api/v1/namespaces/{}/pods/{name}/log?{}{FORWARDED}=true",
                        ctx.info.namespace,
                        query.map(|q| format!("{q}&")).unwrap_or_default()
                    );
                    forward(&device_logs.forward_tls, &address, &path).await
                }
                _ => Err(not_connected(&node)),
            }
        }
        Err(LogError::NotHere(_)) => Err(not_connected(&node)),
        Err(LogError::Unavailable(why)) => Err(ApiError::Unavailable(why)),
    }
}

fn not_connected(node: &str) -> ApiError {
    ApiError::Unavailable(format!(
        "device {node} is not connected to the hub: its logs cannot be read now"
    ))
}

/// Waits for the device's first chunk (an error, or the start of the log),
/// then streams the rest.
async fn respond(mut stream: LogStream) -> Result<Response, ApiError> {
    let first = tokio::time::timeout(FIRST_CHUNK, stream.next())
        .await
        .map_err(|_| ApiError::Timeout("the device did not answer the log request in time".into()))?
        .ok_or_else(|| ApiError::Unavailable("the device went away".into()))?;
    if let Some(error) = &first.error {
        return Err(ApiError::BadRequest(error.clone()));
    }
    // The stream ends after the device's last chunk; dropped earlier (the
    // client left), it cancels the request on the device.
    let body = futures_util::stream::unfold(
        (Some(first), stream, false),
        |(pending, mut stream, done)| async move {
            if done {
                return None;
            }
            let chunk = match pending {
                Some(chunk) => chunk,
                None => stream.next().await?,
            };
            let eof = chunk.eof;
            let data = Bytes::from(chunk.data);
            Some((Ok::<_, std::io::Error>(data), (None, stream, eof)))
        },
    );
    let mut response = Body::from_stream(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// Forwards the request to the replica at `address` and streams its answer.
async fn forward(
    tls: &Arc<rustls::ClientConfig>,
    address: &str,
    path: &str,
) -> Result<Response, ApiError> {
    let unavailable =
        |why: String| ApiError::Unavailable(format!("forwarding to {address}: {why}"));
    let (host, _) = address
        .rsplit_once(':')
        .ok_or_else(|| unavailable("not host:port".into()))?;
    let host = host.trim_matches(['[', ']']).to_owned();
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| unavailable(e.to_string()))?;
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, address)
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| unavailable(e.to_string()))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let (parts, body) = answer.into_parts();
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = parts.status;
    if let Some(kind) = parts.headers.get(header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, kind.clone());
    }
    if parts.status != StatusCode::OK {
        tracing::debug!(%address, status = %parts.status, "forwarded log request answered");
    }
    Ok(response)
}
