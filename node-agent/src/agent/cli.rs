//! `flotilla-agent run`: the agent on a real device, fed by its hub over the
//! MQTT link (`--hub`), or from a desired-state file (`--desired-file`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};

use super::{Clock, LinuxHost, Paths, Services, feed};
use crate::cgroup::CgroupFs;
use crate::image::{Credentials, ImageStore, RegistryConfig, RegistrySource};
use crate::link;
use crate::runtime::{RuntimeCli, RuntimeCliConfig, RuntimePreference};
use crate::state::StateDir;

/// Options of `flotilla-agent run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The device's node name.
    #[arg(long)]
    pub node: String,
    /// Durable state: desired state, pod records, images, bundles.
    #[arg(long, default_value = "/var/lib/flotilla")]
    pub state_dir: PathBuf,
    /// Volatile state (a tmpfs): namespaces, secrets, runtime state, statuses.
    #[arg(long, default_value = "/run/flotilla")]
    pub run_dir: PathBuf,
    /// A desired-state file to follow (JSON if it ends in .json, else
    /// postcard), instead of a hub.
    #[arg(long, required_unless_present = "hubs", conflicts_with = "hubs")]
    pub desired_file: Option<PathBuf>,
    /// Where each pod's status is written as `<uid>.json` when fed from a
    /// file (default `<run-dir>/status`).
    #[arg(long)]
    pub status_dir: Option<PathBuf>,
    /// A hub's MQTT address (`host:port`, the host as its certificate names
    /// it); repeatable: the link fails over between them.
    #[arg(long = "hub", requires_all = ["hub_ca", "cert", "key"])]
    pub hubs: Vec<crate::link::HubAddress>,
    /// The CA certificate (PEM) the hub's certificate must chain to.
    #[arg(long)]
    pub hub_ca: Option<PathBuf>,
    /// The device's certificate (PEM), naming the node; written here when
    /// the device enrolls or renews.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The device's private key (PEM); written here when it enrolls or
    /// renews.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// A file holding a bootstrap token (`ID.SECRET`): without a
    /// certificate, the device enrolls with it; refused a renewal, it
    /// enrolls again.
    #[arg(long, requires = "apis")]
    pub bootstrap_token_file: Option<PathBuf>,
    /// A hub's Kubernetes API address (`host:port`), for enrollment and
    /// certificate renewal; repeatable. Without it, the certificate is
    /// never renewed.
    #[arg(long = "api")]
    pub apis: Vec<crate::link::HubAddress>,
    /// Seconds between heartbeats (the hub's liveness signal).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub heartbeat_seconds: u64,
    /// Report disk pressure when less than this percentage of the state
    /// directory's filesystem is free (kubelet's `nodefs.available`
    /// eviction threshold; 0: never).
    #[arg(long, default_value_t = link::device::DISK_PRESSURE_PERCENT, value_parser = clap::value_parser!(u64).range(0..=99))]
    pub disk_pressure_percent: u64,
    /// MQTT keepalive in seconds (the heartbeat is the liveness signal; this
    /// only lets the broker drop a dead connection).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(5..=65_535))]
    pub keep_alive_seconds: u64,
    /// A label the device asserts about itself (`key=value`); repeatable.
    #[arg(long = "node-label", value_parser = parse_label)]
    pub node_labels: Vec<(String, String)>,
    /// Pods this device accepts at most.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// The OCI runtime: auto (crun if it can run here, else runc), crun, runc or a path.
    #[arg(long, default_value = "auto")]
    pub runtime: String,
    /// A registry (`host:port`) reached over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// A PEM file of CA certificates trusted for registries, besides the system's.
    #[arg(long = "registry-ca")]
    pub registry_cas: Vec<PathBuf>,
    /// A JSON file of registry credentials:
    /// `{"host:port": {"username": "u", "password": "p"} | {"token": "t"}}`.
    #[arg(long)]
    pub registry_auth_file: Option<PathBuf>,
    /// Disk the image store may use, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub image_budget_mib: u64,
}

#[derive(serde::Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum AuthEntry {
    Basic { username: String, password: String },
    Bearer { token: String },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    use flotilla_shared::validation::{Path, validate_labels};
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected key=value"))?;
    let labels = BTreeMap::from([(key.to_owned(), value.to_owned())]);
    let errors = validate_labels(&labels, &Path::new("--node-label"));
    if errors.is_empty() {
        Ok((key.to_owned(), value.to_owned()))
    } else {
        Err(errors.to_string())
    }
}

fn credentials(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, Credentials>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let entries: BTreeMap<String, AuthEntry> = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a registry credentials file", path.display()))?;
    Ok(entries
        .into_iter()
        .map(|(host, entry)| {
            let credentials = match entry {
                AuthEntry::Basic { username, password } => {
                    Credentials::Basic { username, password }
                }
                AuthEntry::Bearer { token } => Credentials::Bearer { token },
            };
            (host, credentials)
        })
        .collect())
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    flotilla_shared::wire::topics::validate_node_name(&args.node)?;
    // One thread: the agent's work is I/O and waiting; blocking file and
    // mount work goes to tokio's blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<()> {
    let paths = Paths {
        state_dir: args.state_dir.clone(),
        run_dir: args.run_dir.clone(),
    };
    let state = StateDir::open(&paths.state_dir)?;
    let preference: RuntimePreference = args
        .runtime
        .parse()
        .map_err(|e| anyhow::anyhow!("--runtime: {e}"))?;
    let choice = crate::runtime::choose(&preference, std::path::Path::new("/sys/fs/cgroup"))?;
    if let Some(reason) = &choice.fallback_reason {
        tracing::warn!(%reason, binary = %choice.binary.display(), "crun cannot run here; using runc");
    }
    let runtime = RuntimeCli::new(RuntimeCliConfig::new(
        &choice,
        &paths.run_dir.join("runtime"),
        &paths.run_dir.join("shims"),
    ))?;
    let mut registry = RegistryConfig {
        plain_http: args.insecure_registries.clone(),
        ..RegistryConfig::default()
    };
    for ca in &args.registry_cas {
        registry
            .extra_ca_pem
            .push(std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?);
    }
    if let Some(file) = &args.registry_auth_file {
        registry.credentials = credentials(file)?;
    }
    let images = ImageStore::open(
        paths.state_dir.join("images"),
        RegistrySource::new(registry)?,
        args.image_budget_mib.saturating_mul(1024 * 1024),
    )?;
    let host = LinuxHost {
        paths: paths.clone(),
        cgroups: CgroupFs::detect()?,
    };
    let services = Arc::new(Services {
        node: args.node.clone(),
        runtime,
        images,
        host,
        state,
        paths: paths.clone(),
        clock: Clock::new(),
    });
    let (desired_tx, desired_rx) = watch::channel(None);
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let (stored_tx, stored_rx) = watch::channel(None);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let Some(file) = &args.desired_file {
        tokio::spawn(feed::watch_file(
            file.clone(),
            Duration::from_millis(200),
            desired_tx,
        ));
        tokio::spawn(feed::write_statuses(
            args.status_dir
                .clone()
                .unwrap_or_else(|| paths.run_dir.join("status")),
            status_rx,
        ));
    } else {
        let (Some(ca), Some(cert), Some(key)) = (&args.hub_ca, &args.cert, &args.key) else {
            anyhow::bail!("--hub needs --hub-ca, --cert and --key");
        };
        let bootstrap_token = match &args.bootstrap_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let identity = link::identity::IdentityConfig {
            node: args.node.clone(),
            apis: args.apis.clone(),
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
            bootstrap_token,
        };
        link::identity::recover(&identity)?;
        if !link::identity::enrolled(&identity) && identity.bootstrap_token.is_none() {
            anyhow::bail!(
                "{} or {} is missing, and there is no --bootstrap-token-file to enroll with",
                cert.display(),
                key.display()
            );
        }
        // Checked now when there is a certificate: a bad file is an error
        // at start, not a link that never comes up.
        let tls = link::identity::enrolled(&identity)
            .then(|| link::tls_config(ca, cert, key))
            .transpose()?;
        let device = link::device::Identity {
            node: args.node.clone(),
            container_runtime: choice
                .binary
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            labels: args.node_labels.iter().cloned().collect(),
            max_pods: args.max_pods,
            // At most a day, by the flag's range.
            heartbeat_seconds: u32::try_from(args.heartbeat_seconds).unwrap_or(u32::MAX),
            disk_pressure_percent: args.disk_pressure_percent,
        };
        let (node, hubs) = (args.node.clone(), args.hubs.clone());
        let (heartbeat, keep_alive) = (args.heartbeat_seconds, args.keep_alive_seconds);
        let config = move |tls, refused| link::LinkConfig {
            node,
            hubs,
            tls,
            heartbeat: Duration::from_secs(heartbeat),
            keep_alive: Duration::from_secs(keep_alive),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            identity: device,
            refused,
        };
        let listed = Arc::clone(&services);
        let side = link::AgentSide {
            desired: desired_tx,
            stored: stored_rx,
            statuses: status_rx,
            images: Box::new(move || {
                listed
                    .images
                    .list()
                    .into_iter()
                    .map(|i| flotilla_shared::wire::ImageInfo {
                        names: i.names,
                        size_bytes: i.size_bytes,
                    })
                    .collect()
            }),
            state_dir: paths.state_dir.clone(),
        };
        let mut shutdown = shutdown_rx.clone();
        tokio::spawn(async move {
            let tls = match tls {
                Some(tls) => tls,
                // Enroll first; the pods the device holds run meanwhile.
                None => match link::identity::ensure_enrolled(&identity, &mut shutdown).await {
                    Ok(true) => match link::tls_config(&identity.ca, &identity.cert, &identity.key)
                    {
                        Ok(tls) => tls,
                        Err(error) => {
                            return tracing::error!(%error, "the enrolled certificate is unusable");
                        }
                    },
                    Ok(false) => return,
                    Err(error) => return tracing::error!(%error, "enrollment failed"),
                },
            };
            let (tls_tx, tls_rx) = watch::channel(Arc::new(tls));
            let refused = if identity.apis.is_empty() {
                tracing::warn!("no --api address: the device certificate will not be renewed");
                None
            } else {
                let refused = Arc::new(tokio::sync::Notify::new());
                tokio::spawn(link::identity::maintain(
                    identity,
                    tls_tx,
                    Arc::clone(&refused),
                    shutdown.clone(),
                ));
                Some(refused)
            };
            link::run(config(tls_rx, refused), side, shutdown).await;
        });
    }
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = shutdown_tx.send(true);
    });
    tracing::info!(node = %args.node, runtime = %choice.binary.display(), "agent running");
    super::run(services, desired_rx, status_tx, stored_tx, shutdown_rx).await?;
    Ok(())
}
