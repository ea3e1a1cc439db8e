//! The `flotilla-hub` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use flotilla_hub::api::ApiConfig;
use flotilla_hub::check;
use flotilla_hub::replica::{Client, Dialer, Options};
use flotilla_hub::server::{self, ServerArgs};
use flotilla_shared::manifest::FieldValidation;

/// Flotilla's control plane.
#[derive(Debug, Parser)]
#[command(name = "flotilla-hub", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode and validate manifests as the API server's admission will,
    /// printing every problem of every object (exit status 1 if any).
    Check {
        /// Manifest files, or directories of *.yaml / *.yml / *.json files.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// What to do with fields the object model does not know, as kubectl's `--validate`.
        #[arg(long, value_enum, default_value_t = Validate::Strict)]
        validate: Validate,
    },
    /// Start (or resume) a hub replica. With no --join, a new data directory
    /// becomes a one-replica cluster.
    Server(Box<Server>),
    /// Issue a device's certificate from a replica's cluster CA, for a
    /// device set up by hand (`flotilla-agent run --cert/--key/--hub-ca`):
    /// writes ca.crt, device.crt and device.key (0600) into --out.
    DeviceCert {
        /// A replica's data directory (its pki/ holds the CA key).
        #[arg(long)]
        data_dir: PathBuf,
        /// The device's node name (a DNS-1123 subdomain).
        #[arg(long)]
        node: String,
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
        days: u64,
    },
    /// Operate a running cluster: status, remove a replica, back up.
    #[command(subcommand)]
    Cluster(Cluster),
    /// Create the data directory of a new cluster's first replica from a
    /// backup; then start it with `server --data-dir` (it bootstraps a new
    /// cluster with a new CA, and other replicas join it).
    Restore {
        /// A file written by `cluster backup`.
        #[arg(long)]
        from: PathBuf,
        /// The new replica's data directory (must not hold a database yet).
        #[arg(long)]
        data_dir: PathBuf,
        /// How far the revision moves ahead of the backup's, so that every
        /// revision clients and devices saw before is behind the new cluster.
        #[arg(long, default_value_t = flotilla_hub::store::DEFAULT_REVISION_BUMP)]
        bump_revision: u64,
    },
}

#[derive(Debug, Args)]
struct Server {
    /// The replica's data directory (database, id, certificates).
    #[arg(long)]
    data_dir: PathBuf,
    /// Address for replicas and store clients.
    #[arg(long, default_value = "127.0.0.1:7420")]
    listen: SocketAddr,
    /// Address other replicas reach this one at (default: --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Another name or IP for the replica's certificate (repeatable; used
    /// when the data directory is created).
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// A replica of an existing cluster to join.
    #[arg(long, requires = "ca_from")]
    join: Option<String>,
    /// Directory holding the cluster's ca.crt and ca.key (to join).
    #[arg(long)]
    ca_from: Option<PathBuf>,
    /// Leader heartbeat interval, in milliseconds.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Election timeout range, in milliseconds (min and max).
    #[arg(long, num_args = 2, default_values_t = [250, 500])]
    election_timeout_ms: Vec<u64>,
    /// Build a snapshot (and purge the log before it) every this many entries.
    #[arg(long, default_value_t = 20_000)]
    snapshot_after_entries: u64,
    /// Address of the Kubernetes API (HTTPS); default: --listen's IP, port 6443.
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// A Kubernetes static token file (`token,user,uid,"group1,group2"`).
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Serve requests without credentials as system:anonymous.
    #[arg(long)]
    anonymous_auth: bool,
    /// How often watches that ask for bookmarks get one, in seconds.
    #[arg(long, default_value_t = 60)]
    watch_bookmark_interval_s: u64,
    /// Compact the store's history every this many seconds (0: never).
    #[arg(long, default_value_t = 300)]
    compaction_interval_s: u64,
    /// The `spec.schedulerName` of the pods this hub's scheduler places;
    /// pods naming another scheduler are left to it.
    #[arg(long, default_value = flotilla_hub::scheduler::DEFAULT_SCHEDULER_NAME)]
    scheduler_name: String,
    #[command(flatten)]
    mqtt: Mqtt,
}

/// The device link: the embedded MQTT endpoint (default), or an external
/// broker (Mosquitto, EMQX).
#[derive(Debug, Args)]
struct Mqtt {
    /// Where the embedded MQTT endpoint listens for devices (TLS with
    /// device certificates); default: --listen's IP, port 8883.
    #[arg(long, conflicts_with = "mqtt_broker")]
    mqtt_listen: Option<SocketAddr>,
    /// The broker devices connect to (`host:port`, TLS); the Raft leader's
    /// gateway connects to it as a client.
    #[arg(long, requires_all = ["mqtt_ca", "mqtt_cert", "mqtt_key"])]
    mqtt_broker: Option<String>,
    /// The CA (PEM) the broker's certificate is checked against.
    #[arg(long)]
    mqtt_ca: Option<PathBuf>,
    /// The hub's client certificate (PEM) for the broker; its name is the
    /// user the broker's ACL gives every device topic to.
    #[arg(long)]
    mqtt_cert: Option<PathBuf>,
    /// The key (PEM) of --mqtt-cert.
    #[arg(long)]
    mqtt_key: Option<PathBuf>,
    /// Renew a device's Lease at most this often, in seconds (its
    /// heartbeats between renewals stay in memory).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_renewal_seconds: u64,
    /// How long the device certificates this hub issues are valid, in
    /// seconds (30 days; agents renew at about two thirds).
    #[arg(long, default_value_t = 30 * 86_400, value_parser = clap::value_parser!(u64).range(10..=3650 * 86_400))]
    device_cert_seconds: u64,
    /// How many days after its expiry a device certificate may still renew
    /// itself (a device back from a long time offline); past it, the device
    /// enrolls again with a bootstrap token.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(0..=3650))]
    device_renewal_grace_days: u64,
}

impl Mqtt {
    fn device_link(&self) -> anyhow::Result<server::DeviceLink> {
        use flotilla_hub::pki::{Certificate, PrivateKey, client_config};
        let lease_renewal = Duration::from_secs(self.lease_renewal_seconds);
        let (Some(broker), Some(ca), Some(cert), Some(key)) = (
            &self.mqtt_broker,
            &self.mqtt_ca,
            &self.mqtt_cert,
            &self.mqtt_key,
        ) else {
            return Ok(server::DeviceLink::Embedded {
                listen: self.mqtt_listen,
                lease_renewal,
            });
        };
        let (host, port) = broker
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .filter(|(h, p)| !h.is_empty() && *p != 0)
            .with_context(|| format!("--mqtt-broker {broker:?}: expected host:port"))?;
        let ca = Certificate::load(ca).context("--mqtt-ca")?;
        let cert = Certificate::load(cert).context("--mqtt-cert")?;
        let key = PrivateKey::load(key).context("--mqtt-key")?;
        let tls = client_config(&ca, Some((std::slice::from_ref(&cert), &key)))
            .context("the hub's TLS client configuration for the broker")?;
        Ok(server::DeviceLink::External(
            flotilla_hub::gateway::link::GatewayConfig {
                host: host.to_owned(),
                port,
                tls: std::sync::Arc::new(tls),
                lease_renewal,
            },
        ))
    }
}

#[derive(Debug, Args)]
struct Connect {
    /// Replicas to talk to (`host:port`), tried in order.
    #[arg(long = "server", required = true, value_delimiter = ',')]
    servers: Vec<String>,
    /// A PKI directory with ca.crt, admin.crt and admin.key (a replica's
    /// `DATA_DIR/pki` has them).
    #[arg(long)]
    pki: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Cluster {
    /// Print a replica's view of the cluster as JSON.
    Status(Connect),
    /// Remove a replica (by id) from the cluster.
    Remove {
        #[command(flatten)]
        connect: Connect,
        #[arg(long)]
        id: u64,
    },
    /// Write a consistent backup of the store to a file.
    Backup {
        #[command(flatten)]
        connect: Connect,
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Validate {
    Strict,
    Warn,
    Ignore,
}

fn main() -> anyhow::Result<ExitCode> {
    let command = Cli::parse().command;
    if let Command::Check { files, validate } = command {
        return check_files(&files, validate);
    }
    if let Command::DeviceCert {
        data_dir,
        node,
        out,
        days,
    } = command
    {
        return device_cert(&data_dir, &node, &out, days);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        match command {
            Command::Check { .. } | Command::DeviceCert { .. } => unreachable!("handled above"),
            Command::Server(args) => run_server(*args).await,
            Command::Cluster(cluster) => run_cluster(cluster).await,
            Command::Restore {
                from,
                data_dir,
                bump_revision,
            } => {
                let backup = std::fs::read(&from)
                    .with_context(|| format!("read the backup {}", from.display()))?;
                std::fs::create_dir_all(&data_dir)
                    .with_context(|| format!("create {}", data_dir.display()))?;
                let restored = flotilla_hub::store::restore(
                    &server::db_path(&data_dir),
                    &backup,
                    bump_revision,
                )
                .context("restore the backup")?;
                eprintln!(
                    "restored revision {} as revision {} into {}",
                    restored.backup_revision,
                    restored.revision,
                    data_dir.display()
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn run_server(args: Server) -> anyhow::Result<ExitCode> {
    let [min, max] = args.election_timeout_ms[..] else {
        anyhow::bail!("--election-timeout-ms takes two values");
    };
    let options = Options {
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        election_timeout: (Duration::from_millis(min), Duration::from_millis(max)),
        snapshot_after_entries: args.snapshot_after_entries,
        ..Options::default()
    };
    let device_link = args.mqtt.device_link()?;
    let server_args = ServerArgs {
        data_dir: args.data_dir,
        listen: args.listen,
        advertise: args.advertise,
        tls_sans: args.tls_sans,
        join: args.join,
        ca_from: args.ca_from,
        options,
        api_listen: args.api_listen,
        api: ApiConfig {
            anonymous: args.anonymous_auth,
            token_file: args.token_auth_file,
            bookmark_interval: Duration::from_secs(args.watch_bookmark_interval_s.max(1)),
            compaction_interval: Duration::from_secs(args.compaction_interval_s),
            device_cert_validity: Duration::from_secs(args.mqtt.device_cert_seconds),
            device_renewal_grace: Duration::from_secs(args.mqtt.device_renewal_grace_days * 86_400),
            ..ApiConfig::default()
        },
        scheduler: flotilla_hub::scheduler::Config {
            scheduler_name: args.scheduler_name,
            ..flotilla_hub::scheduler::Config::default()
        },
        device_link,
    };
    server::run(server_args, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn device_cert(
    data_dir: &std::path::Path,
    node: &str,
    out: &std::path::Path,
    days: u64,
) -> anyhow::Result<ExitCode> {
    use flotilla_hub::pki::{CertRequest, ClusterCa};
    flotilla_shared::wire::topics::validate_node_name(node)
        .with_context(|| format!("--node {node:?}"))?;
    let ca = ClusterCa::load(&server::pki_dir(data_dir))
        .with_context(|| format!("load the cluster CA of {}", data_dir.display()))?;
    let issued = ca
        .issue(&CertRequest::device(
            node,
            Duration::from_secs(days * 24 * 3600),
        ))
        .context("issue the device certificate")?;
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    ca.certificate()
        .save(&out.join("ca.crt"))
        .and_then(|()| issued.save(out, "device"))
        .with_context(|| format!("write into {}", out.display()))?;
    eprintln!("issued {node}'s certificate into {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn admin_client(connect: &Connect) -> anyhow::Result<Client> {
    let tls = server::admin_client_config(&connect.pki)
        .with_context(|| format!("load the admin certificate from {}", connect.pki.display()))?;
    Ok(Client::new(
        connect.servers.clone(),
        Dialer::new(tls, None),
        Duration::from_secs(30),
    ))
}

async fn run_cluster(cluster: Cluster) -> anyhow::Result<ExitCode> {
    match cluster {
        Cluster::Status(connect) => {
            let status = admin_client(&connect)?.status().await?;
            println!("{}", status_json(&status));
        }
        Cluster::Remove { connect, id } => {
            admin_client(&connect)?.remove(id).await?;
            eprintln!("removed replica {id}");
        }
        Cluster::Backup { connect, to } => {
            let bytes = admin_client(&connect)?.backup().await?;
            server::write_atomically(&to, &bytes)?;
            eprintln!(
                "backup of {} bytes written to {}",
                bytes.len(),
                to.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status_json(status: &flotilla_hub::replica::Status) -> String {
    let members: Vec<String> = status
        .members
        .iter()
        .map(|m| {
            format!(
                "{{\"id\":{},\"addr\":{:?},\"voter\":{}}}",
                m.id, m.addr, m.voter
            )
        })
        .collect();
    let opt = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
    format!(
        "{{\"id\":{},\"addr\":{:?},\"leader\":{},\"term\":{},\"members\":[{}],\"last_log_index\":{},\"last_applied_index\":{},\"revision\":{},\"log_appends\":{},\"log_commits\":{}}}",
        status.id,
        status.addr,
        opt(status.leader),
        status.term,
        members.join(","),
        opt(status.last_log_index),
        opt(status.last_applied_index),
        status.revision,
        status.log_appends,
        status.log_commits
    )
}

fn check_files(files: &[PathBuf], validate: Validate) -> anyhow::Result<ExitCode> {
    let mode = match validate {
        Validate::Strict => FieldValidation::Strict,
        Validate::Warn => FieldValidation::Warn,
        Validate::Ignore => FieldValidation::Ignore,
    };
    let reports = check::check_paths(files, mode)?;
    let mut ok = true;
    for file in &reports {
        ok &= file.is_ok();
        match &file.outcome {
            Err(e) => eprintln!("error: {}: {e}", file.path.display()),
            Ok(objects) => {
                for object in objects {
                    for warning in &object.warnings {
                        eprintln!("Warning: {}: {warning}", object.reference);
                    }
                    match &object.error {
                        None => {
                            println!("{} valid ({})", object.reference, file.path.display())
                        }
                        Some(error) => eprintln!("error: {}: {error}", file.path.display()),
                    }
                }
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
