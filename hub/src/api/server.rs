//! The HTTPS listener: TLS with optional client certificates (rustls), HTTP/1.1
//! (hyper), and one axum handler that takes every request through
//! authentication, authorization and dispatch, timing and counting it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower::ServiceExt as _;
use tracing::{Instrument as _, debug, info_span};

use super::authn::{self, Authenticator, Credentials, Outcome};
use super::authz::{Attributes, Authorizer, Decision, forbidden_message};
use super::handlers;
use super::metrics::{Metrics, RequestLabels};
use super::request::{PathError, RequestInfo};
use super::status::ApiError;
use super::storage::Storage;
use super::user::UserInfo;
use crate::listener::{ConnectionError, accept_tls};
use crate::pki::{self, Identity};
use crate::replica::{Consistency, Node};

/// How an API server behaves; the defaults are Kubernetes'.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Serve requests without credentials as `system:anonymous` (off by default).
    pub anonymous: bool,
    /// A Kubernetes static token file (`token,user,uid,"groups"`).
    pub token_file: Option<PathBuf>,
    /// The largest request body accepted (kube-apiserver: 3 MiB).
    pub max_body_bytes: usize,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// The longest a watch runs before the server ends it (the client re-watches).
    pub max_watch: Duration,
    /// How often the store's history is compacted (zero: never).
    pub compaction_interval: Duration,
    /// How long a device certificate is valid.
    pub device_cert_validity: Duration,
    /// How long after its expiry a device certificate may still renew.
    pub device_renewal_grace: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            anonymous: false,
            token_file: None,
            max_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(60),
            max_watch: Duration::from_secs(30 * 60),
            compaction_interval: Duration::from_secs(5 * 60),
            device_cert_validity: Duration::from_secs(30 * 24 * 3600),
            device_renewal_grace: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Api {
    pub storage: Storage,
    pub authn: Authenticator,
    /// Fed by [`super::policy_sync`] from watches of the store.
    pub authz: Arc<RwLock<Authorizer>>,
    pub metrics: Metrics,
    pub config: ApiConfig,
    /// Issues device certificates (enrollment and renewal); `None`: the
    /// device paths answer 503.
    pub devices: Option<Arc<crate::gateway::enroll::DeviceIssuer>>,
    /// Reaches device logs (`kubectl logs`); `None`: 503.
    pub device_logs: Option<super::handlers::logs::DeviceLogs>,
}

impl Api {
    pub fn new(node: Arc<Node>, config: ApiConfig) -> Result<Self, authn::TokenFileError> {
        let mut authn = Authenticator::new(config.anonymous);
        if let Some(path) = &config.token_file {
            authn = authn.with_token_file(path)?;
        }
        Ok(Api {
            storage: Storage::new(node),
            authn,
            authz: Arc::new(RwLock::new(Authorizer::new())),
            metrics: Metrics::default(),
            config,
            devices: None,
            device_logs: None,
        })
    }

    /// Serves `kubectl logs` through the device gateways.
    pub fn with_device_logs(mut self, logs: super::handlers::logs::DeviceLogs) -> Self {
        self.device_logs = Some(logs);
        self
    }

    /// Serves the device paths with `issuer`.
    pub fn with_devices(mut self, issuer: crate::gateway::enroll::DeviceIssuer) -> Self {
        self.devices = Some(Arc::new(issuer));
        self
    }
}

/// What a connection knows about its client.
#[derive(Debug, Clone, Default)]
struct Connection {
    identity: Option<Arc<Identity>>,
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    api: Arc<Api>,
    shutdown: impl Future<Output = ()>,
) {
    let router = Router::new().fallback(handle).with_state(api);
    accept_tls(listener, acceptor, "API", shutdown, move |tls| {
        connection(tls, router.clone())
    })
    .await;
}

async fn connection(tls: TlsStream<TcpStream>, router: Router) -> Result<(), ConnectionError> {
    let conn = Connection {
        identity: pki::peer_identity(tls.get_ref().1).map(Arc::new),
    };
    let service = router.map_request(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(conn.clone());
        request.map(Body::new)
    });
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
        .await?;
    Ok(())
}

/// Every request: authenticate, authorize, dispatch; then count and time it.
async fn handle(State(api): State<Arc<Api>>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let watch = handlers::query_flag(request.uri().query(), "watch");
    let info = RequestInfo::parse(&method, &path, watch);
    let span = info_span!("request", %method, %path, user = tracing::field::Empty, code = tracing::field::Empty);
    let labels = metric_labels(&method, info.as_ref().ok());
    let response = async {
        // A renewal is authenticated by the signature in its body, made
        // with the key of a certificate that may have expired.
        if path == flotilla_shared::enroll::RENEW_PATH {
            if method != Method::POST {
                return ApiError::MethodNotAllowed.into_response();
            }
            return handlers::devices::renew(&api, request.into_body())
                .await
                .unwrap_or_else(IntoResponse::into_response);
        }
        let identity = request
            .extensions()
            .get::<Connection>()
            .and_then(|c| c.identity.clone());
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let user = match authenticate(&api, identity, authorization).await {
            Ok(user) => user,
            Err(e) => return e.into_response(),
        };
        tracing::Span::current().record("user", user.name.as_str());
        match info {
            Ok(info) => {
                // A create is authorized with the name in its body (the node
                // authorizer checks a device creates only its own Node and Lease).
                let (request, create_name) = if info.verb == "create" {
                    let (parts, body) = request.into_parts();
                    let bytes = match handlers::read_body(&api, body).await {
                        Ok(bytes) => bytes,
                        Err(e) => return e.into_response(),
                    };
                    let name = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v.pointer("/metadata/name")?.as_str().map(str::to_owned));
                    (Request::from_parts(parts, Body::from(bytes)), name)
                } else {
                    (request, None)
                };
                let attrs = resource_attributes(&info, request.uri().query(), create_name);
                if let Err(e) = authorize(&api, &user, &attrs) {
                    return e.into_response();
                }
                handlers::resource(&api, info, request).await
            }
            Err(PathError::Method(_)) => ApiError::MethodNotAllowed.into_response(),
            Err(PathError::NotResource) => {
                let attrs = non_resource_attributes(&method, &path);
                if let Err(e) = authorize(&api, &user, &attrs) {
                    return e.into_response();
                }
                if path == flotilla_shared::enroll::ENROLL_PATH && method == Method::POST {
                    return handlers::devices::enroll(&api, &user, request.into_body())
                        .await
                        .unwrap_or_else(IntoResponse::into_response);
                }
                let headers = request.headers().clone();
                drop(request);
                handlers::non_resource(&api, &method, &path, &headers)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            }
        }
    }
    .instrument(span.clone())
    .await;
    let code = response.status().as_u16();
    span.record("code", code);
    api.metrics.record(labels, code, started.elapsed());
    response
}

/// What a resource request asks, for the authorizer.
fn resource_attributes(
    info: &RequestInfo,
    query: Option<&str>,
    create_name: Option<String>,
) -> Attributes {
    let fields = handlers::query_value(query, "fieldSelector")
        .and_then(|text| flotilla_shared::selector::FieldSelector::parse(&text).ok());
    let selected = |field: &str| {
        fields
            .as_ref()
            .and_then(|f| f.exact_value(field))
            .map(str::to_owned)
    };
    let node_name_selector = selected("spec.nodeName");
    // A list or watch of one name is authorized as that name (kube-apiserver's RequestInfoFactory).
    let name = match (info.verb, info.name.is_empty()) {
        ("list" | "watch", true) => selected("metadata.name").unwrap_or_default(),
        _ => info.name.clone(),
    };
    Attributes {
        verb: info.verb.to_owned(),
        resource_request: true,
        api_group: info.group.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        namespace: info.namespace.clone(),
        name,
        path: String::new(),
        node_name_selector,
        create_name,
    }
}

/// What a non-resource request (`/version`, `/api`, `/metrics`) asks, for the authorizer.
fn non_resource_attributes(method: &Method, path: &str) -> Attributes {
    Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        resource_request: false,
        api_group: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        path: path.to_owned(),
        node_name_selector: None,
        create_name: None,
    }
}

fn metric_labels(method: &Method, info: Option<&RequestInfo>) -> RequestLabels {
    let verb = match info.map(|i| i.verb) {
        Some("list") => "LIST".to_owned(),
        Some("watch") => "WATCH".to_owned(),
        _ => method.as_str().to_owned(),
    };
    RequestLabels {
        verb,
        group: info.map(|i| i.group.clone()).unwrap_or_default(),
        resource: info.map(|i| i.resource.clone()).unwrap_or_default(),
        subresource: info.map(|i| i.subresource.clone()).unwrap_or_default(),
    }
}

async fn authenticate(
    api: &Api,
    identity: Option<Arc<Identity>>,
    authorization: Option<String>,
) -> Result<UserInfo, ApiError> {
    let credentials = Credentials {
        certificate: identity.as_deref(),
        authorization: authorization.as_deref(),
    };
    let outcome = api.authn.authenticate(credentials).map_err(|e| {
        debug!(error = %e, "authentication failed");
        ApiError::Unauthorized
    })?;
    match outcome {
        Outcome::User(user) => Ok(user),
        Outcome::Bootstrap { id, secret } => {
            let secrets = flotilla_shared::model::KindInfo::find("v1", "Secret")
                .ok_or_else(|| ApiError::Internal("no Secret kind".into()))?;
            let name = format!("{}{id}", authn::BOOTSTRAP_SECRET_PREFIX);
            let stored = api
                .storage
                .get(
                    secrets,
                    authn::BOOTSTRAP_NAMESPACE,
                    &name,
                    Consistency::Stale,
                )
                .await?;
            let token = match stored.map(|s| s.object) {
                Some(flotilla_shared::model::Object::Secret(secret)) => Some(secret),
                _ => None,
            };
            authn::bootstrap_user(&id, &secret, token.as_ref(), std::time::SystemTime::now())
                .map_err(|e| {
                    debug!(error = %e, "bootstrap token refused");
                    ApiError::Unauthorized
                })
        }
    }
}

fn authorize(api: &Api, user: &UserInfo, attrs: &Attributes) -> Result<(), ApiError> {
    let decision = api
        .authz
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .authorize(user, attrs);
    match decision {
        Decision::Allow => Ok(()),
        Decision::Deny { reason } => Err(forbidden(user, attrs, &reason)),
        Decision::NoOpinion => Err(forbidden(user, attrs, "")),
    }
}

fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let resource = attrs.resource_request.then(|| {
        (
            super::status::GroupResource {
                group: attrs.api_group.clone(),
                resource: attrs.resource.clone(),
            },
            attrs.name.clone(),
        )
    });
    ApiError::Forbidden {
        message: forbidden_message(user, attrs, reason),
        resource,
    }
}

/// A plain response with a content type.
pub fn respond(code: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut response = (code, body.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Whether `headers` accept a server-side Table (`as=Table;g=meta.k8s.io`).
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
        })
}
