//! `flotilla-hub server`: start (or resume) one replica from its data
//! directory.
//!
//! The data directory holds everything a replica is:
//!
//! - `replica.db` (with `-wal`, `-shm`): the Raft log and the state machine;
//! - `replica-id`: the replica's Raft id, chosen at random on first start;
//! - `pki/`: the cluster CA, this replica's certificate and an admin
//!   client certificate (see [`crate::pki`]).
//!
//! With no `--join`, a new data directory becomes a one-replica cluster with
//! a new CA. With `--join ADDR`, the replica asks the cluster at `ADDR` to add
//! it (as a learner until it has caught up, then as a voter); it must be given
//! the cluster's CA (`--ca-from`: a directory holding `ca.crt` and `ca.key`),
//! as kubeadm's manual certificate distribution does for a new control-plane
//! node. A data directory that already belongs to a cluster resumes, whatever
//! the flags say.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::api::{self, ApiConfig};
use crate::pki;
use crate::replica::{Client, ClientError, Dialer, Node, Options, Peers, serve, split_host};
use crate::store::NodeId;

/// What `flotilla-hub server` was asked.
#[derive(Debug, Clone)]
pub struct ServerArgs {
    pub data_dir: PathBuf,
    /// Where to listen for replicas and store clients.
    pub listen: SocketAddr,
    /// The address other replicas use to reach this one (default: `listen`).
    pub advertise: Option<String>,
    /// More names and IPs the replica's certificate answers to (what devices
    /// and kubectl dial, when not the advertised address), at its creation.
    pub tls_sans: Vec<String>,
    /// A replica of the cluster to join.
    pub join: Option<String>,
    /// A directory with the cluster CA (`ca.crt`, `ca.key`), for joining.
    pub ca_from: Option<PathBuf>,
    pub options: Options,
    /// Where the Kubernetes API listens (default: `listen`'s IP, port 6443).
    pub api_listen: Option<SocketAddr>,
    pub api: ApiConfig,
    /// The scheduler's settings (its name among them).
    pub scheduler: crate::scheduler::Config,
    pub device_link: DeviceLink,
}

/// How devices reach the hub.
#[derive(Debug, Clone)]
pub enum DeviceLink {
    /// This replica's embedded MQTT endpoint (default: `listen`'s IP, port
    /// [`DEFAULT_MQTT_PORT`]).
    Embedded {
        listen: Option<SocketAddr>,
        lease_renewal: Duration,
    },
    /// An external broker, which the leader's gateway is a client of.
    External(crate::gateway::link::GatewayConfig),
}

/// The embedded MQTT endpoint's port when none is given (MQTT over TLS).
pub const DEFAULT_MQTT_PORT: u16 = 8883;

/// The Kubernetes API's port when none is given.
pub const DEFAULT_API_PORT: u16 = 6443;

/// The admin kubeconfig inside a data directory.
pub fn kubeconfig_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.kubeconfig")
}

/// The file names inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("replica.db")
}

/// The PKI directory inside a data directory.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    pki::ReplicaPki::dir_of(data_dir)
}

/// Runs the replica until `shutdown` completes. Prints one JSON line on
/// standard output when the replica is a member and serving:
/// `{"ready":true,"id":…,"addr":"…","api":"…","mqtt":"…"}` (`mqtt`: the
/// embedded endpoint's address, when there is one).
pub async fn run(
    args: ServerArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    create_private_dir(dir)?;
    let advertise = args
        .advertise
        .clone()
        .unwrap_or_else(|| args.listen.to_string());
    let db = db_path(dir);
    let new_replica = !db.exists();
    if new_replica
        && args.join.is_some()
        && args.ca_from.is_none()
        && !pki_dir(dir).join("ca.crt").exists()
    {
        bail!(
            "joining a cluster needs its CA: pass --ca-from DIR (a directory with ca.crt and ca.key of a replica)"
        );
    }
    let id = replica_id(dir)?;
    let ca = args
        .ca_from
        .as_deref()
        .map(pki::ClusterCa::load)
        .transpose()
        .context("load the cluster CA given with --ca-from")?;
    let (advertised_host, _) = split_host(&advertise)
        .with_context(|| format!("--advertise {advertise:?} must be host:port"))?;
    let mut hosts = vec![pki::Host::parse(advertised_host)];
    if !args.listen.ip().is_unspecified() {
        hosts.push(pki::Host::from(args.listen.ip()));
    }
    hosts.extend(args.tls_sans.iter().map(|h| pki::Host::parse(h)));
    if let DeviceLink::Embedded {
        listen: Some(mqtt), ..
    } = &args.device_link
        && !mqtt.ip().is_unspecified()
    {
        hosts.push(pki::Host::from(mqtt.ip()));
    }
    hosts.dedup();
    let tls = pki::ReplicaPki::init(dir, ca.as_ref(), &format!("replica-{id}"), &hosts)
        .context("prepare the replica's certificates")?;
    let client_tls = Arc::new(tls.client_config()?);
    let source_ip = source_ip(&advertise, args.listen.ip());
    let peers = Arc::new(Peers::new(Dialer::new(client_tls.clone(), source_ip)));
    let node = Node::start(id, advertise.clone(), &db, peers, args.options.clone())
        .await
        .context("start the replica")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let acceptor = TlsAcceptor::from(Arc::new(tls.server_config(pki::ClientAuth::Required)?));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, acceptor, node.clone(), async {
        let _ = stopped.await;
    }));

    let api_listen = args
        .api_listen
        .unwrap_or_else(|| SocketAddr::new(args.listen.ip(), DEFAULT_API_PORT));
    let api_listener = TcpListener::bind(api_listen)
        .await
        .with_context(|| format!("listen for the API on {api_listen}"))?;
    let api_port = api_listener.local_addr()?.port();
    let mut api_tls = tls.server_config(pki::ClientAuth::Optional)?;
    api_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let api_address = join_host_port(advertised_host, api_port);
    let device_logs = crate::gateway::logs::Logs::default();
    let issuer = crate::gateway::enroll::DeviceIssuer::new(
        pki::ClusterCa::load(tls.dir())
            .context("load the cluster CA to issue device certificates")?,
        args.api.device_cert_validity,
        args.api.device_renewal_grace,
    );
    let api_state = Arc::new(
        api::Api::new(node.clone(), args.api.clone())
            .context("configure the API server")?
            .with_devices(issuer)
            .with_device_logs(api::handlers::logs::DeviceLogs {
                logs: device_logs.clone(),
                own_address: api_address.clone(),
                forward_tls: Arc::new(
                    pki::client_config(
                        tls.ca().certificate(),
                        Some((
                            std::slice::from_ref(&tls.admin().certificate),
                            &tls.admin().key,
                        )),
                    )
                    .context("the client configuration for forwarding log requests")?,
                ),
            }),
    );
    let replica_side = crate::gateway::link::ReplicaSide {
        logs: device_logs,
        api_address: Some(api_address),
    };
    let (policy_ready, _) = tokio::sync::watch::channel(false);
    tokio::spawn(api::sync::follow(
        api_state.storage.clone(),
        api_state.authz.clone(),
        policy_ready,
    ));
    tokio::spawn(api::sync::compact_periodically(
        node.clone(),
        args.api.compaction_interval,
    ));
    let (stop_controllers, controllers_stopped) = tokio::sync::oneshot::channel::<()>();
    let controllers = tokio::spawn(crate::controllers::runtime::run(
        node.clone(),
        api_state.storage.clone(),
        crate::controllers::standard,
        args.scheduler.clone(),
        async {
            let _ = controllers_stopped.await;
        },
    ));
    let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
    let (gateway, mqtt) = match args.device_link.clone() {
        DeviceLink::External(config) => {
            let gateway = tokio::spawn(crate::gateway::link::run_external(
                node.clone(),
                api_state.storage.clone(),
                config,
                replica_side,
                async {
                    let _ = gateway_stopped.await;
                },
            ));
            (gateway, None)
        }
        DeviceLink::Embedded {
            listen,
            lease_renewal,
        } => {
            let listen =
                listen.unwrap_or_else(|| SocketAddr::new(args.listen.ip(), DEFAULT_MQTT_PORT));
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("listen for devices (MQTT) on {listen}"))?;
            let listen = listener.local_addr()?;
            let acceptor =
                TlsAcceptor::from(Arc::new(tls.server_config(pki::ClientAuth::Required)?));
            let (events, from_devices) = tokio::sync::mpsc::unbounded_channel();
            let storage = api_state.storage.clone();
            let (revocations, revoked) = tokio::sync::watch::channel(None);
            let gateway = tokio::spawn(async move {
                let endpoint = crate::gateway::endpoint::serve(listener, acceptor, events, revoked);
                let gateway = crate::gateway::link::run_embedded(
                    storage,
                    from_devices,
                    revocations,
                    lease_renewal,
                    replica_side,
                );
                tokio::select! {
                    () = endpoint => {}
                    () = gateway => {}
                    _ = gateway_stopped => {}
                }
            });
            (gateway, Some(listen))
        }
    };
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_server = tokio::spawn(api::server::serve(
        api_listener,
        TlsAcceptor::from(Arc::new(api_tls)),
        api_state.clone(),
        async {
            let _ = api_stopped.await;
        },
    ));

    if !node.is_member().await {
        match &args.join {
            None => {
                node.bootstrap()
                    .await
                    .context("bootstrap a one-replica cluster")?;
                info!(id, addr = %advertise, "bootstrapped a new cluster");
            }
            Some(seed) => {
                let client = Client::new(
                    vec![seed.clone()],
                    Dialer::new(client_tls.clone(), source_ip),
                    Duration::from_secs(120),
                );
                join(&client, id, &advertise).await?;
                info!(id, addr = %advertise, seed, "joined the cluster");
            }
        }
    }
    // The system namespaces and the bootstrap policy: a new cluster is
    // usable when it says ready; a replica without a quorum still starts.
    let defaults = tokio::spawn(api::sync::ensure_defaults(api_state.storage.clone()));
    if tokio::time::timeout(Duration::from_secs(10), defaults)
        .await
        .is_err()
    {
        warn!("the default namespaces and policy are not in place yet; continuing");
    }
    let api_url = format!("https://{}", join_host_port(advertised_host, api_port));
    write_atomically(
        &kubeconfig_path(dir),
        api::kubeconfig::admin_kubeconfig(&tls, &api_url).as_bytes(),
    )
    .context("write the admin kubeconfig")?;
    let mqtt = mqtt.map(|a| join_host_port(advertised_host, a.port()));
    announce_ready(id, &advertise, &api_url, mqtt.as_deref())?;
    shutdown.await;
    info!("shutting down");
    let _ = stop.send(());
    let _ = stop_api.send(());
    let _ = stop_controllers.send(());
    let _ = stop_gateway.send(());
    let _ = controllers.await;
    let _ = gateway.await;
    let _ = server.await;
    let _ = api_server.await;
    node.shutdown().await;
    Ok(())
}

async fn join(client: &Client, id: NodeId, advertise: &str) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(100);
    for _ in 0..30 {
        match client.join(id, advertise.to_owned()).await {
            Ok(()) => return Ok(()),
            // Nothing was done, or joining again is harmless: retry.
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Unknown(_))) => {
                warn!(error = %e, "join failed; retrying");
            }
            Err(ClientError::Failed(crate::replica::Failure::NotLeader { .. })) => {}
            Err(e) => return Err(e).context("join the cluster"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    bail!("the cluster did not accept this replica; is the seed address right?")
}

/// `host:port`, with brackets around an IPv6 host.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn announce_ready(id: NodeId, addr: &str, api: &str, mqtt: Option<&str>) -> anyhow::Result<()> {
    let mqtt = mqtt.map_or(String::new(), |m| format!(",\"mqtt\":{m:?}"));
    let line = format!("{{\"ready\":true,\"id\":{id},\"addr\":{addr:?},\"api\":{api:?}{mqtt}}}\n");
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A client configuration with the admin certificate of a PKI directory
/// (`ca.crt`, `admin.crt`, `admin.key`): for `flotilla-hub cluster` and
/// tests. The CA key is not needed.
pub fn admin_client_config(pki_dir: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let ca = pki::Certificate::load(&pki_dir.join("ca.crt"))?;
    let admin = pki::IssuedCert::load(pki_dir, "admin")?;
    let config = pki::client_config(
        &ca,
        Some((std::slice::from_ref(&admin.certificate), &admin.key)),
    )?;
    Ok(Arc::new(config))
}

/// Outgoing connections leave from the advertised IP when it is a local
/// address, so that packet filters can tell replicas apart on one host.
fn source_ip(advertise: &str, listen: IpAddr) -> Option<IpAddr> {
    let ip: IpAddr = split_host(advertise).ok()?.0.parse().ok()?;
    (ip == listen || listen.is_unspecified())
        .then_some(ip)
        .filter(|ip| !ip.is_unspecified())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create the data directory {}", dir.display()))
}

/// The replica's Raft id: read from `replica-id`, or chosen at random and
/// written there (atomically) on first start.
fn replica_id(dir: &Path) -> anyhow::Result<NodeId> {
    let path = dir.join("replica-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .with_context(|| format!("{} does not hold a replica id", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = random_id()?;
            write_atomically(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// A random id in 1..2^53 (ids stay exact in JSON readers).
fn random_id() -> anyhow::Result<NodeId> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("read /dev/urandom")?;
    Ok((u64::from_le_bytes(bytes) >> 11).max(1))
}

/// Writes `bytes` to `path` through a synced temp file and a rename, then
/// syncs the directory: after a crash the file is whole or absent.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_connections_leave_from_the_advertised_local_ip() {
        let lo: IpAddr = "127.0.0.11".parse().unwrap();
        assert_eq!(source_ip("127.0.0.11:7000", lo), Some(lo));
        assert_eq!(
            source_ip("127.0.0.11:7000", "0.0.0.0".parse().unwrap()),
            Some(lo)
        );
        assert_eq!(source_ip("10.0.0.5:7000", lo), None);
        assert_eq!(source_ip("hub-0:7000", lo), None);
    }

    #[test]
    fn the_replica_id_is_chosen_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = replica_id(dir.path()).unwrap();
        assert!((1..1 << 53).contains(&id));
        assert_eq!(replica_id(dir.path()).unwrap(), id);
        std::fs::write(dir.path().join("replica-id"), "garbage").unwrap();
        let err = replica_id(dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not hold a replica id"),
            "{err:#}"
        );
    }
}
