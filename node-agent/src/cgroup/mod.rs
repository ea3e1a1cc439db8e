//! Pod cgroups and their usage statistics, on cgroup v1, hybrid and v2.
//!
//! The OCI runtime creates each container's leaf cgroup from the spec's
//! `linux.cgroupsPath` (`/flotilla/pod-<uid>/<container-id>`) and applies its
//! limits; this module creates and removes the pod's parent
//! (`/flotilla/pod-<uid>`) in every hierarchy and reads statistics.
//!
//! Why not cgroups-rs (which the issue names): measured on 2026-11-21 with a
//! scratch crate (`cgroups-rs = "=0.5.1"`, default features) and a tiny binary
//! that creates a cgroup, reads memory/cpuacct/pids stats and deletes it, built
//! with the agent profile (opt-level z, LTO, strip) for aarch64-unknown-linux-musl:
//! 338,928 bytes without it, 466,712 bytes with it (+125 KiB); it adds 45.7 s
//! of build on this 2-core machine and 92 packages to the lock file (zbus 5,
//! nix 0.25 beside our other versions). It worked on this hybrid host. It was
//! still not used, for what it does not do:
//! - on v2 its `memory_stat()` never reads `memory.events`, so `oom_kill` is
//!   always 0 there, and v2 CPU usage comes back as the raw `cpu.stat` text;
//! - its readers turn read errors into zeros (`memory_stat() -> Memory`, each
//!   file `.unwrap_or(0)`), so a removed cgroup reads as an idle one;
//! - `hierarchies::auto()` and `V1::new()` read the global `/proc/self/mountinfo`
//!   and `/sys/fs/cgroup`, so the root cannot be injected for tests.
//!
//! The cgroupfs code here is small, reports every failure, and takes its
//! mountinfo and root as inputs ([`CgroupFs::detect_with`]).

mod fs;
mod memory;

use std::path::PathBuf;

pub use fs::CgroupFs;
pub use memory::MemoryCgroups;

/// How the cgroup hierarchies are mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Only v1 hierarchies (a tmpfs at the root with one mount per hierarchy).
    V1,
    /// v1 hierarchies plus a v2 mount (usually `<root>/unified`) that holds
    /// no controllers the agent uses; resources are v1.
    Hybrid,
    /// One unified v2 hierarchy at the root.
    V2,
}

/// Usage of one cgroup (a pod parent or a container leaf), as kubelet
/// reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// CPU time used by every task ever in the cgroup and its children.
    pub cpu_usage_ns: u64,
    /// Usage minus inactive file pages (kubelet's working set).
    pub memory_working_set_bytes: u64,
    /// `None` when there is no limit.
    pub memory_limit_bytes: Option<u64>,
    /// Processes the kernel's OOM killer killed in this cgroup.
    pub oom_kills: u64,
    /// Tasks in the cgroup now.
    pub pids: u64,
}

/// Errors from the cgroup module. `retry_helps` says whether the same call
/// may work later.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("cannot read the cgroup mounts from {path}: {source}")]
    Mounts {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cgroup hierarchy mounted under {root} (mountinfo lists none)")]
    NoHierarchy { root: PathBuf },
    #[error("the {controller} controller is not mounted")]
    NoController { controller: &'static str },
    #[error("cannot create cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup {path} does not exist")]
    NotFound { path: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unexpected content in {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
}

impl CgroupError {
    /// Whether retrying the same call later may succeed: a cgroup still
    /// holding tasks (`EBUSY`) or children is removable once they are gone.
    pub fn retry_helps(&self) -> bool {
        match self {
            CgroupError::Remove { source, .. } => {
                matches!(
                    source.raw_os_error(),
                    Some(libc::EBUSY) | Some(libc::ENOTEMPTY)
                )
            }
            CgroupError::Create { .. } | CgroupError::Write { .. } | CgroupError::Read { .. } => {
                true
            }
            _ => false,
        }
    }
}

/// The agent's view of the cgroup hierarchies. Paths are absolute cgroup
/// paths such as `/flotilla/pod-<uid>`, the same in every hierarchy, as runc
/// interprets `linux.cgroupsPath`.
pub trait Cgroups: Send + Sync + std::fmt::Debug {
    /// How the hierarchies are mounted (decides the cgroup namespace of
    /// containers: v2 only).
    fn layout(&self) -> Layout;
    /// Creates `path` (and its ancestors) in every hierarchy; existing
    /// directories are kept. On v2 it delegates the cpu, memory and pids
    /// controllers down to `path`'s children.
    fn create(&self, path: &str) -> Result<(), CgroupError>;
    /// Removes `path` from every hierarchy; already gone is fine. Fails,
    /// retryably, while it still holds tasks or children.
    fn remove(&self, path: &str) -> Result<(), CgroupError>;
    /// Whether `path` exists (in the memory hierarchy on v1).
    fn exists(&self, path: &str) -> Result<bool, CgroupError>;
    /// Usage of `path` and everything below it.
    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError>;
    /// How many tasks the OOM killer killed in `path` and below.
    fn oom_kills(&self, path: &str) -> Result<u64, CgroupError> {
        Ok(self.stats(path)?.oom_kills)
    }
}

/// The pod parent cgroup path of a pod, under `root` (default `/flotilla`).
pub fn pod_cgroup_path(root: &str, pod_uid: &str) -> String {
    format!("{}/pod-{pod_uid}", root.trim_end_matches('/'))
}

/// Checks an absolute cgroup path and returns its components: no `.`/`..`,
/// no empty components except a trailing slash, and not the root itself.
pub fn validate_path(path: &str) -> Result<Vec<&str>, CgroupError> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| invalid("not absolute"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err(invalid("the root cgroup"));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    for part in &parts {
        match *part {
            "" => return Err(invalid("empty component")),
            "." | ".." => return Err(invalid("dot component")),
            p if p.contains('\0') => return Err(invalid("NUL byte")),
            _ => {}
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_must_be_absolute_and_plain() {
        assert_eq!(
            validate_path("/flotilla/pod-1").unwrap(),
            ["flotilla", "pod-1"]
        );
        assert_eq!(validate_path("/flotilla/").unwrap(), ["flotilla"]);
        for bad in ["flotilla", "/", "/a/../b", "/a//b", "/a/./b", ""] {
            assert!(
                matches!(validate_path(bad), Err(CgroupError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn pod_paths_hang_under_the_configured_root() {
        assert_eq!(pod_cgroup_path("/flotilla", "u1"), "/flotilla/pod-u1");
        assert_eq!(pod_cgroup_path("/flotilla/", "u1"), "/flotilla/pod-u1");
    }

    #[test]
    fn a_busy_cgroup_is_worth_removing_again_later() {
        let busy = CgroupError::Remove {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert!(busy.retry_helps());
        let invalid = CgroupError::InvalidPath {
            path: "x".into(),
            reason: "not absolute",
        };
        assert!(!invalid.retry_helps());
    }
}
