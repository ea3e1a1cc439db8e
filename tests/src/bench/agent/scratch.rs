//! Everything the benchmark makes on the host, and its removal.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// What the benchmark makes on the host, removed when dropped: the agent
/// process, every container under the runtime roots, the mounts under the
/// temp dir, the pod cgroups named with this run's prefix.
pub(super) struct Scratch {
    dir: tempfile::TempDir,
    /// Unique to this run; starts every pod uid and peer container id.
    pub prefix: String,
    /// The OCI runtime and the `--root`s it keeps containers under.
    pub runtime: PathBuf,
    pub runtime_roots: Vec<PathBuf>,
    /// The `flotilla-agent run` process, killed first.
    pub agent: Option<Child>,
}

impl Scratch {
    pub fn new() -> anyhow::Result<Self> {
        // Not on a tmpfs: overlayfs takes its upper dir on a disk file system.
        let dir = tempfile::Builder::new()
            .prefix("flotilla-bench-agent-")
            .tempdir_in("/var/tmp")?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        Ok(Scratch {
            dir,
            prefix: format!("bench{}x{nanos:x}", std::process::id()),
            runtime: PathBuf::from("runc"),
            runtime_roots: Vec::new(),
            agent: None,
        })
    }

    /// A directory under the temp dir, created.
    pub fn dir(&self, relative: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(path)
    }

    pub fn pod_uid(&self, n: usize) -> String {
        format!("{}-{n}", self.prefix)
    }

    pub fn agent_exited(&mut self) -> bool {
        self.agent
            .as_mut()
            .is_some_and(|child| !matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        // Containers first (their shims then exit), then mounts, then cgroups.
        for root in &self.runtime_roots {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                let _ = Command::new(&self.runtime)
                    .arg("--root")
                    .arg(root)
                    .args(["delete", "--force"])
                    .arg(entry.file_name())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        crate::agent::unmount_below(self.dir.path());
        remove_cgroups(&self.prefix);
    }
}

/// Removes `/flotilla/pod-<prefix>*` and their children from every cgroup
/// hierarchy (v1 controllers and the v2 root or `unified`).
fn remove_cgroups(prefix: &str) {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(hierarchies.flatten().map(|e| e.path()));
    }
    let pod_prefix = format!("pod-{prefix}");
    for root in roots {
        let Ok(pods) = std::fs::read_dir(root.join("flotilla")) else {
            continue;
        };
        for pod in pods.flatten() {
            if !pod.file_name().to_string_lossy().starts_with(&pod_prefix) {
                continue;
            }
            if let Ok(children) = std::fs::read_dir(pod.path()) {
                for child in children.flatten().filter(|c| c.path().is_dir()) {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
            let _ = std::fs::remove_dir(pod.path());
        }
    }
}
