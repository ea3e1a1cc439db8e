//! Runs one probe: a command in the container, a TCP connect or an HTTP GET
//! made from inside the pod's network namespace (so pods need no address
//! reachable from the host). Success is exit status 0, a connection, or an
//! HTTP status from 200 to 399; anything else is a failure with a message.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla_shared::wire::{HttpScheme, Probe, ProbeAction};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use super::{Host, Services};
use crate::image::ImageSource;
use crate::runtime::OciRuntime;

pub(super) async fn run<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    id: &str,
    netns: Option<&Path>,
    probe: &Probe,
) -> Result<(), String>
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    let timeout = Duration::from_secs(u64::from(probe.timeout_seconds.max(1)));
    match &probe.action {
        ProbeAction::Exec { command } => {
            let output = services
                .runtime
                .exec(id, command, timeout)
                .await
                .map_err(|e| e.to_string())?;
            if output.exit_code == 0 {
                Ok(())
            } else {
                let said = String::from_utf8_lossy(&output.stdout);
                Err(format!(
                    "command {command:?} exited with {}: {}",
                    output.exit_code,
                    said.trim()
                ))
            }
        }
        ProbeAction::TcpSocket { host, port } => {
            let addr = address(host, *port)?;
            connect(services, netns, host, addr, timeout)
                .await
                .map(drop)
        }
        ProbeAction::HttpGet {
            scheme,
            host,
            port,
            path,
            headers,
        } => {
            let addr = address(host, *port)?;
            let stream = connect(services, netns, host, addr, timeout).await?;
            let request = http_get(stream, *scheme, addr, path, headers);
            tokio::time::timeout(timeout, request)
                .await
                .map_err(|_| format!("GET on {addr}: timed out after {timeout:?}"))?
        }
    }
}

/// One GET over a connected stream: success is a status from 200 to 399.
async fn http_get(
    stream: tokio::net::TcpStream,
    scheme: HttpScheme,
    addr: SocketAddr,
    path: &str,
    headers: &[flotilla_shared::wire::HttpHeader],
) -> Result<(), String> {
    let mut sender = match scheme {
        HttpScheme::Http => handshake(stream, addr).await?,
        HttpScheme::Https => {
            let tls = tls::connect(stream, addr)
                .await
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            handshake(tls, addr).await?
        }
    };
    let path = if path.is_empty() { "/" } else { path };
    let mut builder = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "flotilla-probe/1.0");
    for header in headers {
        builder = builder.header(header.name.as_str(), header.value.as_str());
    }
    let request = builder
        .body(Empty::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("GET {path} on {addr}: {e}"))?;
    let status = response.status().as_u16();
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {status}"))
    }
}

/// An HTTP/1.1 connection over `io`, driven by its own task.
async fn handshake<T>(
    io: T,
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// HTTPS for probes: like kubelet, the agent does not check the
/// certificate — a probe asks whether the server answers, not who it is.
mod tls {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        // Signatures are still checked: the peer must hold the key of the
        // certificate it shows.
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    pub(super) async fn connect(
        stream: tokio::net::TcpStream,
        addr: SocketAddr,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let name = ServerName::IpAddress(addr.ip().into());
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
    }
}

/// The probe's target: the pod itself (loopback inside its namespace) when
/// no host is given.
fn address(host: &str, port: u16) -> Result<SocketAddr, String> {
    let ip = if host.is_empty() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>()
            .map_err(|_| format!("probe host {host:?} is not an IP address"))?
    };
    Ok(SocketAddr::new(ip, port))
}

async fn connect<R, S, H>(
    services: &Arc<Services<R, S, H>>,
    netns: Option<&Path>,
    host: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, String>
where
    R: OciRuntime + Send + Sync + 'static,
    S: ImageSource,
    H: Host,
{
    // A named host is reached from the device; the pod itself from inside.
    let netns = if host.is_empty() {
        netns.map(Path::to_path_buf)
    } else {
        None
    };
    let svc = Arc::clone(services);
    let stream =
        tokio::task::spawn_blocking(move || svc.host.connect(netns.as_deref(), addr, timeout))
            .await
            .map_err(|e| format!("the probe task failed: {e}"))?
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    stream
        .set_nonblocking(true)
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    tokio::net::TcpStream::from_std(stream).map_err(|e| format!("dial tcp {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A server answering every connection with `status`, over TLS when
    /// `tls` holds its config.
    async fn serve(status: u16, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                    match tls {
                        Some(config) => {
                            let Ok(mut stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                            else {
                                return;
                            };
                            let mut buf = [0u8; 1024];
                            let _ = stream.read(&mut buf).await;
                            let _ = stream.write_all(reply.as_bytes()).await;
                            let _ = stream.flush().await;
                        }
                        None => {
                            let mut stream = stream;
                            let mut buf = [0u8; 1024];
                            let _ = stream.read(&mut buf).await;
                            let _ = stream.write_all(reply.as_bytes()).await;
                        }
                    }
                });
            }
        });
        addr
    }

    fn self_signed() -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["probe.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        Arc::new(config)
    }

    #[tokio::test]
    async fn an_http_probe_succeeds_on_2xx_3xx_and_fails_otherwise() {
        for (status, ok) in [(200, true), (302, true), (404, false), (500, false)] {
            let addr = serve(status, None).await;
            let stream = TcpStream::connect(addr).await.unwrap();
            let result = http_get(stream, HttpScheme::Http, addr, "/healthz", &[]).await;
            assert_eq!(result.is_ok(), ok, "{status}: {result:?}");
        }
    }

    #[tokio::test]
    async fn an_https_probe_accepts_a_self_signed_certificate_as_kubelet_does() {
        let addr = serve(204, Some(self_signed())).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        http_get(stream, HttpScheme::Https, addr, "/", &[])
            .await
            .unwrap();
        // The same server over plain HTTP is not a success.
        let stream = TcpStream::connect(addr).await.unwrap();
        let plain = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            http_get(stream, HttpScheme::Http, addr, "/", &[]),
        )
        .await;
        assert!(!matches!(plain, Ok(Ok(()))), "{plain:?}");
    }

    #[test]
    fn probe_hosts_must_be_addresses() {
        assert_eq!(address("", 80).unwrap().to_string(), "127.0.0.1:80");
        assert_eq!(address("10.0.0.7", 81).unwrap().to_string(), "10.0.0.7:81");
        assert!(
            address("example.com", 80)
                .unwrap_err()
                .contains("not an IP address")
        );
    }
}
