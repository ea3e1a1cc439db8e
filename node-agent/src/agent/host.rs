//! What a pod needs from the device besides the OCI runtime: its sandbox
//! (namespaces, volumes, cgroup), its containers' writable root
//! filesystems, OOM counts, and sockets inside its network namespace.
//! [`LinuxHost`] does it for real; [`MemoryHost`] only makes directories,
//! for executor tests without root.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla_shared::wire::Pod;

use super::Paths;
use crate::bundle::{EtcFiles, PodVolumes, SandboxPaths};
use crate::cgroup::{Cgroups, Layout};

/// The root of the agent's cgroups.
pub const CGROUP_ROOT: &str = "/flotilla";

/// A prepared sandbox: what every container of the pod joins and mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxInfo {
    pub namespaces: SandboxPaths,
    pub volumes: PodVolumes,
}

/// A host operation that failed, with whether a retry may help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HostError {
    pub message: String,
    pub retry_helps: bool,
}

impl HostError {
    fn from(error: impl std::fmt::Display, retry_helps: bool) -> Self {
        HostError {
            message: error.to_string(),
            retry_helps,
        }
    }
}

/// The device's side of a pod. Methods block (file systems, mounts): the
/// executor calls them from blocking tasks.
pub trait Host: Send + Sync + 'static {
    /// Creates (or finds) the pod's namespaces, volumes and cgroup.
    fn prepare_sandbox(&self, pod: &Pod) -> Result<SandboxInfo, HostError>;
    /// Removes them; gone already is fine.
    fn teardown_sandbox(&self, pod: &Pod) -> Result<(), HostError>;
    /// Makes ahead, in the background, what the next pod's sandbox needs
    /// (a spare set of namespaces). Called once a container has started,
    /// so that it does not compete with that start.
    fn make_spares(&self);
    /// Makes `container_dir/rootfs` a writable copy-on-write view of the image.
    fn prepare_rootfs(&self, image_rootfs: &Path, container_dir: &Path) -> Result<(), HostError>;
    fn release_rootfs(&self, container_dir: &Path) -> Result<(), HostError>;
    fn cgroup_layout(&self) -> Layout;
    /// OOM kills in a container's cgroup (0 when unknown).
    fn oom_kills(&self, cgroup_path: &str) -> u64;
    /// A TCP connection made from inside a network namespace (the pod's,
    /// for probes); `None` connects from the host's.
    fn connect(
        &self,
        netns: Option<&Path>,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream>;
}

/// A container's cgroup path.
pub fn container_cgroup(pod_uid: &str, id: &str) -> String {
    format!(
        "{}/{id}",
        crate::cgroup::pod_cgroup_path(CGROUP_ROOT, pod_uid)
    )
}

/// The real host: Linux namespaces, mounts and cgroups.
#[derive(Debug)]
pub struct LinuxHost<C> {
    pub paths: Paths,
    pub cgroups: C,
}

impl<C> LinuxHost<C> {
    fn pod_run_dir(&self, uid: &str) -> PathBuf {
        self.paths.run_dir.join("pods").join(uid)
    }

    fn pod_state_dir(&self, uid: &str) -> PathBuf {
        self.paths.state_dir.join("pods").join(uid)
    }
}

impl<C: Cgroups + 'static> Host for LinuxHost<C> {
    fn prepare_sandbox(&self, pod: &Pod) -> Result<SandboxInfo, HostError> {
        // The pod cgroup (a directory per v1 hierarchy: about a millisecond)
        // is made beside the namespaces and volumes, not after them.
        let (ns, volumes, cgroup) = std::thread::scope(|scope| {
            let cgroup = scope.spawn(|| {
                self.cgroups
                    .create(&crate::cgroup::pod_cgroup_path(CGROUP_ROOT, &pod.uid))
            });
            let ns = crate::runtime::sandbox::create(&self.paths.run_dir, &pod.uid, &pod.name);
            let volumes = ns.is_ok().then(|| {
                crate::bundle::volumes::prepare(
                    pod,
                    &self.pod_state_dir(&pod.uid),
                    &self.pod_run_dir(&pod.uid),
                )
            });
            let cgroup = cgroup.join().unwrap_or_else(|_| {
                Err(crate::cgroup::CgroupError::Create {
                    path: PathBuf::from(CGROUP_ROOT),
                    source: io::Error::other("the cgroup thread panicked"),
                })
            });
            (ns, volumes, cgroup)
        });
        let ns = ns.map_err(|e| HostError::from(&e, e.retry_helps()))?;
        let volumes = volumes
            .expect("prepared once the namespaces are")
            .map_err(|e| HostError::from(&e, e.retry_helps()))?;
        cgroup.map_err(|e| HostError::from(&e, e.retry_helps()))?;
        Ok(SandboxInfo {
            namespaces: SandboxPaths {
                net: (!pod.host_network).then(|| ns.net.clone()),
                ipc: ns.ipc.clone(),
                uts: (!pod.host_network).then(|| ns.uts.clone()),
            },
            volumes,
        })
    }

    fn make_spares(&self) {
        use std::sync::atomic::{AtomicBool, Ordering};
        // One at a time: a burst of starts would otherwise make a spare
        // each, all but one torn down again, competing with the pods' own.
        static MAKING: AtomicBool = AtomicBool::new(false);
        if MAKING.swap(true, Ordering::AcqRel) {
            return;
        }
        let run_dir = self.paths.run_dir.clone();
        std::thread::spawn(move || {
            if let Err(error) = crate::runtime::sandbox::make_spare(&run_dir) {
                tracing::warn!(%error, "making a spare pod sandbox");
            }
            MAKING.store(false, Ordering::Release);
        });
    }

    fn teardown_sandbox(&self, pod: &Pod) -> Result<(), HostError> {
        crate::bundle::volumes::teardown(
            &self.pod_state_dir(&pod.uid),
            &self.pod_run_dir(&pod.uid),
        )
        .map_err(|e| HostError::from(e, true))?;
        crate::runtime::sandbox::remove(&self.paths.run_dir, &pod.uid)
            .map_err(|e| HostError::from(e, true))?;
        self.cgroups
            .remove(&crate::cgroup::pod_cgroup_path(CGROUP_ROOT, &pod.uid))
            .map_err(|e| HostError::from(e, true))?;
        let _ = std::fs::remove_dir_all(self.pod_run_dir(&pod.uid));
        Ok(())
    }

    fn prepare_rootfs(&self, image_rootfs: &Path, container_dir: &Path) -> Result<(), HostError> {
        crate::bundle::rootfs::prepare(image_rootfs, container_dir)
            .map(|_| ())
            .map_err(|e| HostError::from(e, true))
    }

    fn release_rootfs(&self, container_dir: &Path) -> Result<(), HostError> {
        crate::bundle::rootfs::release(container_dir).map_err(|e| HostError::from(e, true))
    }

    fn cgroup_layout(&self) -> Layout {
        self.cgroups.layout()
    }

    fn oom_kills(&self, cgroup_path: &str) -> u64 {
        self.cgroups.oom_kills(cgroup_path).unwrap_or(0)
    }

    fn connect(
        &self,
        netns: Option<&Path>,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        match netns {
            Some(ns) => crate::sys::netns::connect_in(ns, addr, timeout),
            None => TcpStream::connect_timeout(&addr, timeout),
        }
    }
}

/// A host that only makes directories: sandboxes and root filesystems are
/// plain directories under the agent's paths, OOM kills are whatever a test
/// sets, and connections are made from the test's own namespace.
#[derive(Debug, Default)]
pub struct MemoryHost {
    pub paths: Option<Paths>,
    pub oom: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl MemoryHost {
    pub fn new(paths: Paths) -> Self {
        MemoryHost {
            paths: Some(paths),
            oom: Default::default(),
        }
    }

    /// Makes a container's cgroup report an OOM kill.
    pub fn set_oom(&self, cgroup_path: &str) {
        let mut oom = self.oom.lock().unwrap_or_else(|p| p.into_inner());
        *oom.entry(cgroup_path.to_owned()).or_default() += 1;
    }

    fn dir(&self, uid: &str) -> PathBuf {
        let root = self
            .paths
            .as_ref()
            .map_or_else(std::env::temp_dir, |p| p.run_dir.clone());
        root.join("pods").join(uid)
    }
}

impl Host for MemoryHost {
    fn prepare_sandbox(&self, pod: &Pod) -> Result<SandboxInfo, HostError> {
        let dir = self.dir(&pod.uid);
        std::fs::create_dir_all(&dir).map_err(|e| HostError::from(e, true))?;
        let volumes = pod
            .volumes
            .iter()
            .map(|v| (v.name.clone(), dir.join("volumes").join(&v.name)))
            .collect();
        Ok(SandboxInfo {
            namespaces: SandboxPaths {
                net: Some(dir.join("net")),
                ipc: dir.join("ipc"),
                uts: Some(dir.join("uts")),
            },
            volumes: PodVolumes {
                volumes,
                etc: EtcFiles {
                    hosts: dir.join("hosts"),
                    hostname: dir.join("hostname"),
                    resolv_conf: None,
                },
            },
        })
    }

    /// Nothing is made ahead in memory.
    fn make_spares(&self) {}

    fn teardown_sandbox(&self, pod: &Pod) -> Result<(), HostError> {
        match std::fs::remove_dir_all(self.dir(&pod.uid)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(HostError::from(e, true)),
            _ => Ok(()),
        }
    }

    fn prepare_rootfs(&self, _image_rootfs: &Path, container_dir: &Path) -> Result<(), HostError> {
        std::fs::create_dir_all(container_dir.join("rootfs")).map_err(|e| HostError::from(e, true))
    }

    fn release_rootfs(&self, container_dir: &Path) -> Result<(), HostError> {
        match std::fs::remove_dir_all(container_dir.join("rootfs")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(HostError::from(e, true)),
            _ => Ok(()),
        }
    }

    fn cgroup_layout(&self) -> Layout {
        Layout::V2
    }

    fn oom_kills(&self, cgroup_path: &str) -> u64 {
        let oom = self.oom.lock().unwrap_or_else(|p| p.into_inner());
        oom.get(cgroup_path).copied().unwrap_or(0)
    }

    fn connect(
        &self,
        _netns: Option<&Path>,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        TcpStream::connect_timeout(&addr, timeout)
    }
}
