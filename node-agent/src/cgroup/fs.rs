//! The real [`Cgroups`]: directories and files under the cgroup mounts
//! found in a mountinfo file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{CgroupError, CgroupStats, Cgroups, Layout, validate_path};
use crate::sys::mount::{CGROUP2_SUPER_MAGIC, MountInfo, filesystem_magic, parse_mountinfo};

/// v1 memory limits at or above this are "no limit" (the kernel reports
/// `PAGE_COUNTER_MAX` pages, just under `i64::MAX`).
const V1_UNLIMITED: u64 = 1 << 62;

/// The controllers the agent delegates to pod children on v2.
const V2_DELEGATED: [&str; 3] = ["cpu", "memory", "pids"];

/// One v1 hierarchy: where it is mounted and what it controls
/// (`cpu`, `memory`, … or `name=systemd`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Hierarchy {
    mount_point: PathBuf,
    controllers: Vec<String>,
}

/// cgroupfs under injectable mounts: [`CgroupFs::detect`] for the host,
/// [`CgroupFs::detect_with`] for a fake tree.
#[derive(Clone, Debug)]
pub struct CgroupFs {
    layout: Layout,
    /// The v2 mount: the root on v2, the `unified` mount on hybrid.
    unified: Option<PathBuf>,
    v1: Vec<Hierarchy>,
}

impl CgroupFs {
    /// Detects the host's layout from `/sys/fs/cgroup` and `/proc/self/mountinfo`.
    pub fn detect() -> Result<Self, CgroupError> {
        Self::detect_with(
            Path::new("/sys/fs/cgroup"),
            Path::new("/proc/self/mountinfo"),
        )
    }

    /// Detects the layout of the cgroup mounts under `root` listed in the
    /// mountinfo file at `mountinfo`. `root` is v2 when mountinfo shows a
    /// cgroup2 mount there or `statfs` says so.
    pub fn detect_with(root: &Path, mountinfo: &Path) -> Result<Self, CgroupError> {
        let text = fs::read_to_string(mountinfo).map_err(|source| CgroupError::Mounts {
            path: mountinfo.to_owned(),
            source,
        })?;
        let magic = filesystem_magic(root).ok();
        Self::from_mounts(root, &parse_mountinfo(&text), magic)
    }

    fn from_mounts(
        root: &Path,
        mounts: &[MountInfo],
        root_magic: Option<u64>,
    ) -> Result<Self, CgroupError> {
        let under_root = |m: &&MountInfo| m.mount_point.starts_with(root);
        let root_is_v2 = root_magic == Some(CGROUP2_SUPER_MAGIC)
            || mounts
                .iter()
                .any(|m| m.fstype == "cgroup2" && m.mount_point == root);
        if root_is_v2 {
            return Ok(CgroupFs {
                layout: Layout::V2,
                unified: Some(root.to_owned()),
                v1: Vec::new(),
            });
        }
        let mut v1: Vec<Hierarchy> = Vec::new();
        for m in mounts
            .iter()
            .filter(under_root)
            .filter(|m| m.fstype == "cgroup")
        {
            if v1.iter().any(|h| h.mount_point == m.mount_point) {
                continue;
            }
            let controllers = m
                .super_options
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro" | "") && (!o.contains('=') || o.starts_with("name="))
                })
                .map(str::to_owned)
                .collect();
            v1.push(Hierarchy {
                mount_point: m.mount_point.clone(),
                controllers,
            });
        }
        if v1.is_empty() {
            return Err(CgroupError::NoHierarchy {
                root: root.to_owned(),
            });
        }
        let unified = mounts
            .iter()
            .filter(under_root)
            .find(|m| m.fstype == "cgroup2")
            .map(|m| m.mount_point.clone());
        let layout = if unified.is_some() {
            Layout::Hybrid
        } else {
            Layout::V1
        };
        Ok(CgroupFs {
            layout,
            unified,
            v1,
        })
    }

    /// The directory of `path` in the hierarchy holding `controller`.
    fn dir(&self, controller: &'static str, path: &str) -> Result<PathBuf, CgroupError> {
        let rel = relative(path)?;
        if self.layout == Layout::V2 {
            return Ok(self
                .unified
                .as_ref()
                .map(|u| u.join(&rel))
                .unwrap_or_default());
        }
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount_point.join(&rel))
            .ok_or(CgroupError::NoController { controller })
    }

    /// Every hierarchy's directory for `path`.
    fn all_dirs(&self, path: &str) -> Result<Vec<PathBuf>, CgroupError> {
        let rel = relative(path)?;
        let mut dirs: Vec<PathBuf> = self.v1.iter().map(|h| h.mount_point.join(&rel)).collect();
        if let Some(unified) = &self.unified {
            dirs.push(unified.join(&rel));
        }
        Ok(dirs)
    }

    /// Writes `+cpu +memory +pids` (those the level offers) into each
    /// level's `cgroup.subtree_control` from the root down to `path`.
    fn delegate_v2(&self, path: &str) -> Result<(), CgroupError> {
        let Some(root) = &self.unified else {
            return Ok(());
        };
        let mut level = root.clone();
        let parts = validate_path(path)?;
        for i in 0..=parts.len() {
            if i > 0 {
                level.push(parts[i - 1]);
            }
            let offered = match fs::read_to_string(level.join("cgroup.controllers")) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CgroupError::Read {
                        path: level.join("cgroup.controllers"),
                        source,
                    });
                }
            };
            let enable: Vec<String> = V2_DELEGATED
                .iter()
                .filter(|c| offered.split_whitespace().any(|o| o == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if enable.is_empty() {
                continue;
            }
            let file = level.join("cgroup.subtree_control");
            fs::write(&file, enable.join(" "))
                .map_err(|source| CgroupError::Write { path: file, source })?;
        }
        Ok(())
    }

    /// A v1 cpuset cgroup with empty `cpuset.cpus` or `cpuset.mems` refuses
    /// tasks (`ENOSPC`): copy them down from the parent at each level, as
    /// runc does for the leaves it creates.
    fn fill_cpuset_v1(&self, path: &str) -> Result<(), CgroupError> {
        let Some(cpuset) = self
            .v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == "cpuset"))
        else {
            return Ok(());
        };
        let mut level = cpuset.mount_point.clone();
        for part in validate_path(path)? {
            let parent = level.clone();
            level.push(part);
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let own = level.join(file);
                match fs::read_to_string(&own) {
                    Ok(text) if text.trim().is_empty() => {
                        let inherited = read(&parent.join(file))?;
                        fs::write(&own, inherited.trim())
                            .map_err(|source| CgroupError::Write { path: own, source })?;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(CgroupError::Read { path: own, source }),
                }
            }
        }
        Ok(())
    }

    fn stats_v2(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        let dir = self.dir("memory", path)?;
        ensure_exists(&dir, path)?;
        let usage = read_u64(&dir.join("memory.current"))?;
        let inactive = read_key(&dir.join("memory.stat"), "inactive_file")?.unwrap_or(0);
        Ok(CgroupStats {
            cpu_usage_ns: read_key(&dir.join("cpu.stat"), "usage_usec")?
                .unwrap_or(0)
                .saturating_mul(1000),
            memory_working_set_bytes: usage.saturating_sub(inactive),
            memory_limit_bytes: read_limit(&dir.join("memory.max"))?,
            oom_kills: read_key(&dir.join("memory.events"), "oom_kill")?.unwrap_or(0),
            pids: read_u64(&dir.join("pids.current"))?,
        })
    }

    fn stats_v1(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        let memory = self.dir("memory", path)?;
        ensure_exists(&memory, path)?;
        let usage = read_u64(&memory.join("memory.usage_in_bytes"))?;
        let inactive = read_key(&memory.join("memory.stat"), "total_inactive_file")?.unwrap_or(0);
        let limit = read_u64(&memory.join("memory.limit_in_bytes"))?;
        Ok(CgroupStats {
            cpu_usage_ns: read_u64(&self.dir("cpuacct", path)?.join("cpuacct.usage"))?,
            memory_working_set_bytes: usage.saturating_sub(inactive),
            memory_limit_bytes: (limit < V1_UNLIMITED).then_some(limit),
            oom_kills: oom_kills_v1(&memory)?,
            pids: read_u64(&self.dir("pids", path)?.join("pids.current"))?,
        })
    }
}

impl Cgroups for CgroupFs {
    fn layout(&self) -> Layout {
        self.layout
    }

    fn create(&self, path: &str) -> Result<(), CgroupError> {
        if self.layout == Layout::V2 {
            let dir = self.dir("memory", path)?;
            fs::create_dir_all(&dir).map_err(|source| CgroupError::Create { path: dir, source })?;
            return self.delegate_v2(path);
        }
        for dir in self.all_dirs(path)? {
            fs::create_dir_all(&dir).map_err(|source| CgroupError::Create { path: dir, source })?;
        }
        self.fill_cpuset_v1(path)
    }

    fn remove(&self, path: &str) -> Result<(), CgroupError> {
        for dir in self.all_dirs(path)? {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(CgroupError::Remove { path: dir, source }),
            }
        }
        Ok(())
    }

    fn exists(&self, path: &str) -> Result<bool, CgroupError> {
        Ok(self.dir("memory", path)?.is_dir())
    }

    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        match self.layout {
            Layout::V2 => self.stats_v2(path),
            Layout::V1 | Layout::Hybrid => self.stats_v1(path),
        }
    }
}

fn relative(path: &str) -> Result<PathBuf, CgroupError> {
    Ok(validate_path(path)?.iter().collect())
}

fn ensure_exists(dir: &Path, path: &str) -> Result<(), CgroupError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(CgroupError::NotFound {
            path: path.to_owned(),
        })
    }
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    text.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_owned(),
        detail: format!("expected a number, found {:?}", text.trim()),
    })
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read(path)?)
}

/// A `max`-or-number limit file (v2's `memory.max`).
fn read_limit(path: &Path) -> Result<Option<u64>, CgroupError> {
    let text = read(path)?;
    if text.trim() == "max" {
        return Ok(None);
    }
    parse_u64(path, &text).map(Some)
}

/// The value of `key` in a flat keyed file (`key value` per line).
fn read_key(path: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    let text = read(path)?;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if fields.next() == Some(key) {
            return parse_u64(path, fields.next().unwrap_or("")).map(Some);
        }
    }
    Ok(None)
}

/// v1 counts an OOM kill only in the victim's own memory cgroup, not in its
/// ancestors: sum `oom_kill` of `memory.oom_control` over the subtree.
fn oom_kills_v1(dir: &Path) -> Result<u64, CgroupError> {
    let mut total = read_key(&dir.join("memory.oom_control"), "oom_kill")?.unwrap_or(0);
    let entries = fs::read_dir(dir).map_err(|source| CgroupError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let child = entry.path();
        // A child that disappears while we walk no longer counts.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            match oom_kills_v1(&child) {
                Ok(n) => total += n,
                Err(CgroupError::Read { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
