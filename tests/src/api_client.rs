//! A small HTTPS client for the hub's Kubernetes API, for tests and
//! benchmarks that need more control than kubectl gives (timing each call,
//! many concurrent connections, raw status codes).
//!
//! One [`ApiClient`] is one HTTP/1.1 keep-alive connection (hyper's
//! connection-level client over tokio-rustls) authenticated with the admin
//! certificate of a replica's PKI directory.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An answer: the HTTP status code and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One keep-alive connection to one replica's API.
#[derive(Debug)]
pub struct ApiClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    /// `Authorization: Bearer ...` on every request, when set.
    bearer: Option<String>,
}

impl ApiClient {
    /// The client TLS configuration of the admin certificate in `pki_dir`.
    pub fn admin_tls(pki_dir: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        flotilla_hub::server::admin_client_config(pki_dir)
    }

    /// A client TLS configuration trusting the cluster CA of `pki_dir` and
    /// presenting no certificate (for bearer tokens and anonymous requests).
    pub fn ca_only_tls(pki_dir: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let ca = flotilla_hub::pki::Certificate::load(&pki_dir.join("ca.crt"))?;
        Ok(Arc::new(flotilla_hub::pki::client_config(&ca, None)?))
    }

    /// A client TLS configuration with a new certificate for `user` in
    /// `groups`, issued by the cluster CA of `pki_dir` (which holds its key).
    pub fn issued_tls(
        pki_dir: &Path,
        user: &str,
        groups: &[&str],
    ) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        use flotilla_hub::pki::{CertRequest, CertUsage, ClusterCa, client_config};
        let ca = ClusterCa::load(pki_dir)?;
        let issued = ca.issue(&CertRequest {
            common_name: user.to_owned(),
            organizations: groups.iter().map(|g| g.to_string()).collect(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            usage: CertUsage::Client,
            validity: std::time::Duration::from_secs(3600),
        })?;
        let chain = [issued.certificate.clone()];
        Ok(Arc::new(client_config(
            ca.certificate(),
            Some((&chain, &issued.key)),
        )?))
    }

    /// Sends `Authorization: Bearer token` from now on.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    /// Connects to `addr` (`ip:port`).
    pub async fn connect(addr: &str, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let ip: std::net::IpAddr = addr
            .rsplit_once(':')
            .map(|(host, _)| host.trim_matches(['[', ']']))
            .unwrap_or(addr)
            .parse()?;
        let stream = TlsConnector::from(tls)
            .connect(ServerName::IpAddress(ip.into()), tcp)
            .await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(ApiClient {
            sender,
            host: addr.to_owned(),
            bearer: None,
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", content_type)
            .header("accept", "application/json");
        if let Some(token) = &self.bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let code = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer { code, body })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.call("GET", path, "application/json", Vec::new()).await
    }

    pub async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call("POST", path, "application/json", serde_json::to_vec(body)?)
            .await
    }

    pub async fn delete(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.call("DELETE", path, "application/json", Vec::new())
            .await
    }

    /// A JSON merge patch.
    pub async fn merge_patch(&mut self, path: &str, patch: &Value) -> anyhow::Result<Answer> {
        self.call(
            "PATCH",
            path,
            "application/merge-patch+json",
            serde_json::to_vec(patch)?,
        )
        .await
    }

    pub async fn put(&mut self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call("PUT", path, "application/json", serde_json::to_vec(body)?)
            .await
    }

    /// Starts a watch; read its events with [`Watch::next`]. The connection
    /// is the watch's from now on.
    pub async fn watch(mut self, path: &str) -> anyhow::Result<Watch> {
        let request = Request::builder()
            .method("GET")
            .uri(path)
            .header("host", &self.host)
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        anyhow::ensure!(
            response.status() == 200,
            "watch answered {}",
            response.status()
        );
        Ok(Watch {
            body: response.into_body(),
            buffer: Vec::new(),
            start: 0,
        })
    }
}

/// A running watch.
#[derive(Debug)]
pub struct Watch {
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts (lines are not drained one
    /// by one: a chunk of many events would be moved once per event).
    start: usize,
}

impl Watch {
    /// The next event (`{"type": ..., "object": ...}`), or `None` when the server ended the watch.
    pub async fn next(&mut self) -> anyhow::Result<Option<Value>> {
        loop {
            let unread = &self.buffer[self.start..];
            if let Some(end) = unread.iter().position(|b| *b == b'\n') {
                let event = serde_json::from_slice(&unread[..end])?;
                self.start += end + 1;
                return Ok(Some(event));
            }
            self.buffer.drain(..self.start);
            self.start = 0;
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
