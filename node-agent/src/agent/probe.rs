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
            if *scheme == HttpScheme::Https {
                return Err("HTTPS probes are not supported by this agent".to_owned());
            }
            let addr = address(host, *port)?;
            let stream = connect(services, netns, host, addr, timeout).await?;
            let request = async {
                let (mut sender, connection) = hyper::client::conn::http1::handshake::<
                    _,
                    Empty<bytes::Bytes>,
                >(TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
                tokio::spawn(connection);
                let path = if path.is_empty() { "/" } else { path.as_str() };
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
            };
            tokio::time::timeout(timeout, request)
                .await
                .map_err(|_| format!("GET on {addr}: timed out after {timeout:?}"))?
        }
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
