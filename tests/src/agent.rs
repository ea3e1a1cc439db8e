//! A real `flotilla-agent run` process for end-to-end tests: its own state,
//! run and status directories under a temp dir, a desired-state file the
//! test rewrites, statuses read back from files, and a cleanup that leaves
//! no container, mount or cgroup behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flotilla_shared::wire::{
    Container, ContainerState, DesiredState, Pod, PodPhase, PodStatusUpdate, RestartPolicy,
};

/// The `flotilla-agent` binary: `$FLOTILLA_AGENT_BIN`, else beside the
/// running test binary (build it first: `cargo build --workspace --bins`).
pub fn agent_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOTILLA_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current executable");
    let mut dir = exe.parent().expect("executable directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("flotilla-agent");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p flotilla-agent`)",
        bin.display()
    );
    bin
}

/// A unique pod uid (uuid-shaped) for this test run.
pub fn unique_uid() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        std::process::id(),
        n,
        u64::from(nanos)
    )
}

/// A pod of busybox containers running `sh -c <script>`.
pub fn shell_pod(uid: &str, name: &str, image: &str, scripts: &[(&str, &str)]) -> Pod {
    Pod {
        uid: uid.to_owned(),
        namespace: "default".into(),
        name: name.to_owned(),
        containers: scripts
            .iter()
            .map(|(container, script)| shell_container(container, image, script))
            .collect(),
        restart_policy: RestartPolicy::Always,
        termination_grace_period_seconds: 2,
        ..Pod::default()
    }
}

pub fn shell_container(name: &str, image: &str, script: &str) -> Container {
    Container {
        name: name.to_owned(),
        image: image.to_owned(),
        command: vec!["/bin/sh".into(), "-c".into(), script.to_owned()],
        ..Container::default()
    }
}

/// One agent process and its directories.
#[derive(Debug)]
pub struct AgentProcess {
    pub node: String,
    pub dir: tempfile::TempDir,
    registry: String,
    child: Option<Child>,
    revision: u64,
    /// `--hub ...` flags: fed by a hub over MQTT instead of a file.
    link_args: Option<Vec<String>>,
    /// The network namespace it runs in (`nsenter --net`).
    netns: Option<String>,
}

impl AgentProcess {
    /// Starts an agent that may pull from `registry` (`host:port`) over plain HTTP.
    pub fn start(registry: &str) -> anyhow::Result<Self> {
        // Under /var/tmp: overlayfs refuses an upper dir on tmpfs-over-overlay setups less often there.
        let dir = tempfile::Builder::new()
            .prefix("flotilla-agent-")
            .tempdir_in("/var/tmp")?;
        let mut agent = AgentProcess {
            node: "device-1".into(),
            dir,
            registry: registry.to_owned(),
            child: None,
            revision: 0,
            link_args: None,
            netns: None,
        };
        agent.spawn()?;
        Ok(agent)
    }

    /// Starts agent `node` linked to a hub: `link_args` are its `--hub`,
    /// `--hub-ca`, `--cert`, `--key` (and any other) flags.
    pub fn start_linked(
        registry: &str,
        node: &str,
        link_args: Vec<String>,
    ) -> anyhow::Result<Self> {
        Self::start_linked_in(registry, node, link_args, None)
    }

    /// [`AgentProcess::start_linked`] inside network namespace `netns`.
    pub fn start_linked_in(
        registry: &str,
        node: &str,
        link_args: Vec<String>,
        netns: Option<&str>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("flotilla-agent-")
            .tempdir_in("/var/tmp")?;
        let mut agent = AgentProcess {
            node: node.into(),
            dir,
            registry: registry.to_owned(),
            child: None,
            revision: 0,
            link_args: Some(link_args),
            netns: netns.map(str::to_owned),
        };
        agent.spawn()?;
        Ok(agent)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn status_dir(&self) -> PathBuf {
        self.dir.path().join("status")
    }

    fn desired_file(&self) -> PathBuf {
        self.dir.path().join("desired.json")
    }

    /// The runtime's `--root`, for `runc list`.
    pub fn runtime_root(&self) -> PathBuf {
        self.run_dir().join("runtime")
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))?;
        let mut command = match &self.netns {
            Some(netns) => {
                // nsenter, not `ip netns exec`: that remounts /sys, hiding
                // the cgroup hierarchies the agent needs.
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net=/run/netns/{netns}"))
                    .arg("--")
                    .arg(agent_binary());
                command
            }
            None => Command::new(agent_binary()),
        };
        let child = command
            .args(["run", "--node", &self.node])
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(self.feed_args())
            .args(["--insecure-registry", &self.registry])
            .env("RUST_LOG", "info,flotilla_agent=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn feed_args(&self) -> Vec<String> {
        match &self.link_args {
            Some(args) => args.clone(),
            None => vec![
                "--desired-file".into(),
                self.desired_file().display().to_string(),
                "--status-dir".into(),
                self.status_dir().display().to_string(),
            ],
        }
    }

    /// The agent's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Replaces the desired state with these pods (a new revision).
    pub fn set_pods(&mut self, pods: Vec<Pod>) -> anyhow::Result<()> {
        self.revision += 1;
        let desired = DesiredState {
            node: self.node.clone(),
            revision: self.revision,
            pods,
            services: vec![],
        };
        let bytes = serde_json::to_vec(&desired)?;
        let tmp = self.dir.path().join("desired.json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, self.desired_file())?;
        Ok(())
    }

    /// The pod's latest status, if the agent wrote one.
    pub fn status(&self, uid: &str) -> Option<PodStatusUpdate> {
        let bytes = std::fs::read(self.status_dir().join(format!("{uid}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Waits until `check` holds for the pod's status; panics with the
    /// last status and the agent's log after `timeout`.
    pub fn wait_for(
        &self,
        uid: &str,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&PodStatusUpdate) -> bool,
    ) -> PodStatusUpdate {
        let start = Instant::now();
        loop {
            let status = self.status(uid);
            if let Some(status) = &status
                && check(status)
            {
                return status.clone();
            }
            if start.elapsed() > timeout {
                panic!(
                    "pod {uid}: not {what} after {timeout:?}; last status: {status:#?}\nagent log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every container of the pod is running and ready.
    pub fn wait_running(&self, uid: &str, timeout: Duration) -> PodStatusUpdate {
        self.wait_for(uid, timeout, "running", |s| {
            s.phase == PodPhase::Running
                && !s.containers.is_empty()
                && s.containers
                    .iter()
                    .all(|c| matches!(c.state, ContainerState::Running { .. }) && c.ready)
        })
    }

    /// SIGKILL: the agent dies at once; its containers and shims stay.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the agent again with other link flags.
    pub fn relink(&mut self, link_args: Vec<String>) -> anyhow::Result<()> {
        self.kill9();
        self.link_args = Some(link_args);
        self.spawn()
    }

    /// Starts the agent again on the same directories.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }

    /// Container ids the runtime holds, with their status.
    pub fn runtime_containers(&self) -> Vec<(String, String, u32)> {
        let output = Command::new("runc")
            .arg("--root")
            .arg(self.runtime_root())
            .args(["list", "--format", "json"])
            .output();
        let Ok(output) = output else {
            return Vec::new();
        };
        let list: Option<Vec<serde_json::Value>> =
            serde_json::from_slice(&output.stdout).unwrap_or(None);
        let mut ids: Vec<(String, String, u32)> = list
            .unwrap_or_default()
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or_default().to_owned(),
                    c["status"].as_str().unwrap_or_default().to_owned(),
                    c["pid"].as_u64().unwrap_or(0) as u32,
                )
            })
            .collect();
        ids.sort();
        ids
    }

    /// The container's log file content (CRI format).
    pub fn container_log(&self, container_id: &str) -> String {
        let path = self
            .state_dir()
            .join("containers")
            .join(container_id)
            .join("shim/container.log");
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
        // Shims still creating a container when the agent died would finish
        // after the runtime's list below: kill them first (they name the
        // temp dir on their command line), then every process left in the
        // pods' cgroups.
        kill_processes_naming(self.dir.path());
        if let Ok(entries) = std::fs::read_dir(self.state_dir().join("pods")) {
            for entry in entries.flatten() {
                kill_pod_processes(&entry.file_name().to_string_lossy());
            }
        }
        // Containers (and with them their shims), then mounts, then cgroups.
        for (id, _, _) in self.runtime_containers() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(self.runtime_root())
                .args(["delete", "--force", &id])
                .stderr(Stdio::null())
                .status();
        }
        unmount_below(self.dir.path());
        let pods = self.state_dir().join("pods");
        if let Ok(entries) = std::fs::read_dir(&pods) {
            for entry in entries.flatten() {
                remove_pod_cgroups(&entry.file_name().to_string_lossy());
            }
        }
    }
}

/// SIGKILLs every process whose command line names a path below `dir`.
fn kill_processes_naming(dir: &Path) {
    let needle = format!("{}/", dir.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// SIGKILLs every process in `/flotilla/pod-<uid>` of the pids hierarchy
/// (or the v2 root), children included.
fn kill_pod_processes(uid: &str) {
    for root in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup",
    ] {
        let pod = PathBuf::from(root)
            .join("flotilla")
            .join(format!("pod-{uid}"));
        let mut dirs = vec![pod];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    dirs.push(entry.path());
                }
            }
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
}

/// Lazily unmounts everything mounted below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
}

/// Removes `/flotilla/pod-<uid>` (and its children) from every hierarchy.
fn remove_pod_cgroups(uid: &str) {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = hierarchies.flatten().map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        let pod = root.join("flotilla").join(format!("pod-{uid}"));
        if let Ok(children) = std::fs::read_dir(&pod) {
            for child in children.flatten() {
                if child.path().is_dir() {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&pod);
    }
}

/// A registry holding busybox as `<host>/flotilla/busybox:1`.
pub fn registry_with_busybox() -> (crate::registry::Registry, String) {
    let registry = crate::registry::Registry::start(crate::registry::RegistryOptions::default())
        .expect("registry");
    let host = registry.host();
    let reference = format!("{host}/flotilla/busybox:1");
    let image = crate::oci_image::busybox_image(flotilla_agent::image::Platform::of_this_device())
        .expect("busybox image");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = crate::oci_image::push_client(&host).expect("client");
        crate::oci_image::push_image(
            &client,
            &reference,
            &image,
            &oci_client::secrets::RegistryAuth::Anonymous,
        )
        .await
        .expect("push");
    });
    (registry, reference)
}
