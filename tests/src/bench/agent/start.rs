//! Pod start latency: the agent library in-process against bare `run -d`
//! of a copy of one of its bundles.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flotilla_agent::agent::{self, Clock, LinuxHost, Paths, Services};
use flotilla_agent::bundle::rootfs;
use flotilla_agent::cgroup::CgroupFs;
use flotilla_agent::image::{ImageStore, RegistryConfig, RegistrySource};
use flotilla_agent::runtime::{RuntimeCli, RuntimeCliConfig, RuntimePreference, choose};
use flotilla_agent::state::StateDir;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::scratch::Scratch;
use super::{NODE, desired, running, sleeper};
use crate::registry::Registry;

/// Agent samples before the measured ones (the first start writes the
/// seccomp profile, warms the page cache) and the donor of the peer's bundle.
const WARM_UP: usize = 2;
/// The pause before each timed start.
const SETTLE: Duration = Duration::from_millis(200);
/// Longest wait for one container to run.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct StartFigures {
    /// The runtime binary's name (runc or crun).
    pub runtime: String,
    pub agent_ms: Vec<f64>,
    pub runc_ms: Vec<f64>,
}

pub(super) async fn start_latency(
    scratch: &mut Scratch,
    agent_binary: &Path,
    registry: &Registry,
    image: &str,
    samples: usize,
) -> anyhow::Result<StartFigures> {
    let paths = Paths {
        state_dir: scratch.dir("in-process/state")?,
        run_dir: scratch.dir("in-process/run")?,
    };
    let choice = choose(&RuntimePreference::Auto, Path::new("/sys/fs/cgroup"))?;
    scratch.runtime = choice.binary.clone();
    let mut runtime_config = RuntimeCliConfig::new(
        &choice,
        &paths.run_dir.join("runtime"),
        &paths.run_dir.join("shims"),
    );
    // The shim is the agent binary's `shim` subcommand, not this program.
    runtime_config.shim_exe = agent_binary.to_owned();
    scratch.runtime_roots.push(runtime_config.root.clone());
    let images = ImageStore::open(
        paths.state_dir.join("images"),
        RegistrySource::new(RegistryConfig {
            plain_http: vec![registry.host()],
            ..RegistryConfig::default()
        })?,
        1 << 30,
    )?;
    let pulled = images.pull(image).await?;
    let services = Arc::new(Services {
        node: NODE.into(),
        runtime: RuntimeCli::new(runtime_config)?,
        images,
        host: LinuxHost {
            paths: paths.clone(),
            cgroups: CgroupFs::detect()?,
        },
        state: StateDir::open(&paths.state_dir)?,
        paths: paths.clone(),
        clock: Clock::new(),
    });
    let (desired_tx, desired_rx) = watch::channel(None);
    let (status_tx, mut status_rx) = mpsc::unbounded_channel();
    let (_shutdown_tx, shutdown_rx) = watch::channel(false);
    let agent_task = tokio::spawn(agent::run(
        services,
        desired_rx,
        status_tx,
        tokio::sync::watch::channel(None).0,
        shutdown_rx,
    ));

    let mut pods = Vec::new();
    let mut figures = StartFigures {
        runtime: choice
            .binary
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        agent_ms: Vec::new(),
        runc_ms: Vec::new(),
    };
    let peer_root = scratch.dir("peer/root")?;
    scratch.runtime_roots.push(peer_root.clone());
    let mut donor = None;
    for n in 0..WARM_UP + samples {
        let uid = scratch.pod_uid(n);
        pods.push(sleeper(&uid, image));
        // Each start, the agent's and the peer's, begins on a quiet machine:
        // what the previous one left running in the background (the agent
        // makes its spares after a start) is done.
        tokio::time::sleep(SETTLE).await;
        let sent = Instant::now();
        let _ = desired_tx.send(Some(desired(n as u64 + 1, &pods)));
        let status = loop {
            let next = tokio::time::timeout(START_TIMEOUT, status_rx.recv()).await;
            let Ok(Some(status)) = next else {
                if agent_task.is_finished() {
                    bail!("the agent stopped: {:?}", agent_task.await);
                }
                bail!("pod {uid}: no running container after {START_TIMEOUT:?}");
            };
            if status.pod_uid == uid && running(&status)? {
                break status;
            }
        };
        let elapsed = sent.elapsed().as_secs_f64() * 1000.0;
        if n < WARM_UP {
            donor.get_or_insert(status.containers[0].container_id.clone());
            continue;
        }
        figures.agent_ms.push(elapsed);
        let donor_id = donor.as_ref().expect("a warm-up sample");
        let bundle = PeerBundle {
            runtime: choice.binary.clone(),
            root: peer_root.clone(),
            donor_config: paths.container_dir(donor_id).join("config.json"),
            image_rootfs: pulled.rootfs.clone(),
            dir: scratch.dir(&format!("peer/bundle-{n}"))?,
            id: format!("{}-peer-{n}", scratch.prefix),
        };
        tokio::time::sleep(SETTLE).await;
        let runc = tokio::task::spawn_blocking(move || bundle.run()).await??;
        figures.runc_ms.push(runc.as_secs_f64() * 1000.0);
        eprintln!(
            "sample {}: agent {elapsed:.1} ms, {} {:.1} ms",
            n - WARM_UP,
            figures.runtime,
            runc.as_secs_f64() * 1000.0
        );
    }
    agent_task.abort();
    Ok(figures)
}

/// One bare-runtime start of a copy of an agent-generated bundle.
struct PeerBundle {
    runtime: PathBuf,
    /// The runtime's `--root` for the peer's containers.
    root: PathBuf,
    /// The agent's `config.json` to copy.
    donor_config: PathBuf,
    image_rootfs: PathBuf,
    dir: PathBuf,
    id: String,
}

impl PeerBundle {
    /// Prepares the bundle (an overlay rootfs as the agent makes it; the
    /// donor's config with this rootfs, id and a cgroup beside the donor's),
    /// then times `run -d` from spawn to exit. The container keeps running.
    fn run(self) -> anyhow::Result<Duration> {
        self.prepare()?;
        let log = self.dir.join("runtime.log");
        let started = Instant::now();
        // Not pipes: `run -d` leaves them to the container, and a pipe that is
        // read to its end would wait for the container to end.
        let status = Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(["run", "-d", "--bundle"])
            .arg(&self.dir)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .status()?;
        let elapsed = started.elapsed();
        if !status.success() {
            let message = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "{} run -d {}: {status}: {message}",
                self.runtime.display(),
                self.id
            );
        }
        Ok(elapsed)
    }

    fn prepare(&self) -> anyhow::Result<()> {
        let text = std::fs::read(&self.donor_config)
            .with_context(|| format!("reading {}", self.donor_config.display()))?;
        let mut config: Value = serde_json::from_slice(&text)?;
        rootfs::prepare(&self.image_rootfs, &self.dir)?;
        let donor_cgroup = config["linux"]["cgroupsPath"]
            .as_str()
            .context("the agent's config.json has no cgroupsPath")?;
        let (pod_cgroup, _) = donor_cgroup
            .rsplit_once('/')
            .context("a cgroupsPath without a parent")?;
        config["linux"]["cgroupsPath"] = json!(format!("{pod_cgroup}/{}", self.id));
        config["root"]["path"] = json!(self.dir.join("rootfs"));
        std::fs::write(self.dir.join("config.json"), serde_json::to_vec(&config)?)?;
        Ok(())
    }
}
