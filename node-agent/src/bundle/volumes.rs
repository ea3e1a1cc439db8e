//! A pod's volumes on the device, and its `/etc/hosts` and `/etc/hostname`.
//!
//! - emptyDir: `<state>/pods/<uid>/volumes/<name>/` on disk, or a tmpfs at
//!   `<run>/pods/<uid>/volumes/<name>/` for `medium: Memory`;
//! - hostPath: the host path itself, after the kind's check;
//! - configMap: files under `<state>/…/volumes/<name>/`;
//! - secret: files on a tmpfs under `<run>/…/volumes/<name>/`, never on disk.
//!
//! `prepare` is idempotent: after a crash it finds its tmpfs mounts and
//! rewrites the files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flotilla_shared::wire::{FileSet, HostPathKind, Pod, StorageMedium, VolumeSource};

use super::{EtcFiles, PodVolumes};
use crate::state::write_atomic_with_mode;
use crate::sys::mount::{self, TMPFS_MAGIC};

/// The host's resolver configuration, bind-mounted read-only when present.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Errors preparing or removing volumes. Bad pod input is not worth
/// retrying; I/O and mount failures may be ([`VolumeError::retry_helps`]).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("invalid volume name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("two volumes named {name}")]
    Duplicate { name: String },
    #[error("hostPath {path}: {reason}")]
    HostPath { path: String, reason: String },
    #[error("invalid file path {path:?} in volume {volume}: {reason}")]
    InvalidFilePath {
        volume: String,
        path: String,
        reason: &'static str,
    },
    #[error("invalid mode {mode:#o} for {path:?} in volume {volume}: at most 0o777")]
    InvalidMode {
        volume: String,
        path: String,
        mode: u32,
    },
    #[error("{path} is not a tmpfs: refusing to write secret data there")]
    NotTmpfs { path: PathBuf },
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot mount tmpfs at {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("cannot unmount {path}: {source}")]
    Unmount { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot set the owner or mode of {path}: {source}")]
    Ownership { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

impl VolumeError {
    /// Whether the same call may work later.
    pub fn retry_helps(&self) -> bool {
        matches!(
            self,
            VolumeError::Create { .. }
                | VolumeError::Mount { .. }
                | VolumeError::Unmount { .. }
                | VolumeError::Write { .. }
                | VolumeError::Ownership { .. }
                | VolumeError::Remove { .. }
        )
    }
}

fn create_dir(path: &Path, mode: u32) -> Result<(), VolumeError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| VolumeError::Create {
            path: path.to_owned(),
            source,
        })
}

fn check_name(name: &str) -> Result<(), VolumeError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > 253 {
        "longer than 253 bytes"
    } else if name == "." || name == ".." || name.contains(['/', '\0']) {
        "must be one plain path component"
    } else {
        return Ok(());
    };
    Err(VolumeError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Checks every volume of `pod` before anything is created, so bad input
/// changes nothing.
pub fn validate(pod: &Pod) -> Result<(), VolumeError> {
    let mut seen = BTreeSet::new();
    for v in &pod.volumes {
        check_name(&v.name)?;
        if !seen.insert(v.name.as_str()) {
            return Err(VolumeError::Duplicate {
                name: v.name.clone(),
            });
        }
        match &v.source {
            VolumeSource::ConfigMap(files) | VolumeSource::Secret(files) => {
                plan_files(&v.name, files)?;
            }
            VolumeSource::HostPath { path, .. } => {
                check_host_path(path)?;
            }
            VolumeSource::EmptyDir { .. } => {}
        }
    }
    Ok(())
}

/// Prepares every volume of `pod` and its `/etc` files. Returns the host
/// path of each volume by name.
pub fn prepare(
    pod: &Pod,
    pod_state_dir: &Path,
    pod_run_dir: &Path,
) -> Result<PodVolumes, VolumeError> {
    validate(pod)?;
    let disk = pod_state_dir.join("volumes");
    let memory = pod_run_dir.join("volumes");
    create_dir(&disk, 0o700)?;
    create_dir(&memory, 0o700)?;
    let fs_group = pod.security.fs_group;
    let mut volumes = BTreeMap::new();
    for v in &pod.volumes {
        let path = match &v.source {
            VolumeSource::EmptyDir {
                medium,
                size_limit_bytes,
            } => {
                let dir = match medium {
                    StorageMedium::Default => disk.join(&v.name),
                    StorageMedium::Memory => memory.join(&v.name),
                };
                create_dir(&dir, 0o777)?;
                if *medium == StorageMedium::Memory {
                    ensure_tmpfs(&dir, *size_limit_bytes, "0777")?;
                }
                set_mode(&dir, 0o777)?;
                if let Some(gid) = fs_group {
                    own_tree(&dir, gid, 0o2070, 0o060)?;
                }
                dir
            }
            VolumeSource::HostPath { path, kind } => host_path(path, *kind)?,
            VolumeSource::ConfigMap(files) => {
                let dir = disk.join(&v.name);
                create_dir(&dir, 0o755)?;
                write_files(&v.name, &dir, files, fs_group)?;
                dir
            }
            VolumeSource::Secret(files) => {
                let dir = memory.join(&v.name);
                create_dir(&dir, 0o755)?;
                ensure_tmpfs(&dir, Some(secret_size(files)), "0755")?;
                write_files(&v.name, &dir, files, fs_group)?;
                dir
            }
        };
        volumes.insert(v.name.clone(), path);
    }
    Ok(PodVolumes {
        volumes,
        etc: etc_files(pod, pod_state_dir)?,
    })
}

/// Room for the files, one atomic rewrite of all of them, and inodes.
fn secret_size(files: &FileSet) -> u64 {
    let data: u64 = files.files.iter().map(|f| f.data.len() as u64 + 4096).sum();
    2 * data + (1 << 20)
}

/// Mounts a tmpfs at `dir` unless one is there already (a restart).
fn ensure_tmpfs(dir: &Path, size: Option<u64>, mode: &str) -> Result<(), VolumeError> {
    let canonical = fs::canonicalize(dir).map_err(|source| VolumeError::Create {
        path: dir.to_owned(),
        source,
    })?;
    let mounted = mount::is_mount_point(&canonical).map_err(|source| VolumeError::Mount {
        path: dir.to_owned(),
        source,
    })?;
    if mounted {
        // A Secret that grew since the mount needs a bigger tmpfs.
        let current =
            crate::sys::filesystem_space(&canonical).map_err(|source| VolumeError::Mount {
                path: dir.to_owned(),
                source,
            })?;
        if let Some(size) = size.filter(|s| *s > current.total_bytes) {
            mount::remount(&canonical, mount::MountFlags::DATA, &format!("size={size}")).map_err(
                |source| VolumeError::Mount {
                    path: dir.to_owned(),
                    source,
                },
            )?;
        }
    } else {
        let mut data = format!("mode={mode}");
        if let Some(size) = size {
            data.push_str(&format!(",size={size}"));
        }
        mount::mount_fs("tmpfs", &canonical, "tmpfs", mount::MountFlags::DATA, &data).map_err(
            |source| VolumeError::Mount {
                path: dir.to_owned(),
                source,
            },
        )?;
    }
    match mount::filesystem_magic(&canonical) {
        Ok(TMPFS_MAGIC) => Ok(()),
        Ok(_) => Err(VolumeError::NotTmpfs {
            path: dir.to_owned(),
        }),
        Err(source) => Err(VolumeError::Mount {
            path: dir.to_owned(),
            source,
        }),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), VolumeError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| {
        VolumeError::Ownership {
            path: path.to_owned(),
            source,
        }
    })
}

/// kubelet's fsGroup ownership: group `gid` everywhere, directories get
/// `dir_bits` (setgid and group access) and files `file_bits` added.
fn own_tree(path: &Path, gid: u32, dir_bits: u32, file_bits: u32) -> Result<(), VolumeError> {
    let err = |source| VolumeError::Ownership {
        path: path.to_owned(),
        source,
    };
    let meta = fs::symlink_metadata(path).map_err(err)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, None, Some(gid)).map_err(err)?;
    let bits = if meta.is_dir() { dir_bits } else { file_bits };
    set_mode(path, (meta.mode() & 0o7777) | bits)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(err)? {
            own_tree(&entry.map_err(err)?.path(), gid, dir_bits, file_bits)?;
        }
    }
    Ok(())
}

fn check_host_path(path: &str) -> Result<&Path, VolumeError> {
    let fail = |reason: &str| VolumeError::HostPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(fail("not absolute"));
    }
    if p.components().any(|c| c == Component::ParentDir) || path.contains('\0') {
        return Err(fail("contains `..` or a NUL byte"));
    }
    Ok(p)
}

/// Checks (or creates) a hostPath as its kind says, following symlinks
/// as kubelet's `stat` does.
fn host_path(path: &str, kind: HostPathKind) -> Result<PathBuf, VolumeError> {
    let fail = |reason: String| VolumeError::HostPath {
        path: path.to_owned(),
        reason,
    };
    let p = check_host_path(path)?;
    let meta = match fs::metadata(p) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(format!("cannot inspect: {e}"))),
    };
    let want = |ok: bool, what: &str| {
        if ok {
            Ok(p.to_owned())
        } else {
            Err(fail(format!("is not {what}")))
        }
    };
    match (kind, meta) {
        (HostPathKind::Unchecked, _) => Ok(p.to_owned()),
        (HostPathKind::DirectoryOrCreate, None) => {
            create_dir(p, 0o755)?;
            Ok(p.to_owned())
        }
        (HostPathKind::FileOrCreate, None) => {
            if let Some(parent) = p.parent() {
                create_dir(parent, 0o755)?;
            }
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map_err(|source| VolumeError::Create {
                    path: p.to_owned(),
                    source,
                })?;
            set_mode(p, 0o644)?;
            Ok(p.to_owned())
        }
        (_, None) => Err(fail("does not exist".into())),
        (HostPathKind::DirectoryOrCreate | HostPathKind::Directory, Some(m)) => {
            want(m.is_dir(), "a directory")
        }
        (HostPathKind::FileOrCreate | HostPathKind::File, Some(m)) => want(m.is_file(), "a file"),
        (HostPathKind::Socket, Some(m)) => want(m.file_type().is_socket(), "a socket"),
        (HostPathKind::CharDevice, Some(m)) => {
            want(m.file_type().is_char_device(), "a character device")
        }
        (HostPathKind::BlockDevice, Some(m)) => {
            want(m.file_type().is_block_device(), "a block device")
        }
    }
}

/// One file to write: relative path, mode, contents.
type PlannedFile<'a> = (&'a Path, u32, &'a [u8]);

/// Checks the paths and modes of a ConfigMap or Secret: relative, no `.`
/// or `..`, no duplicates, modes within 0o777.
fn plan_files<'a>(volume: &str, set: &'a FileSet) -> Result<Vec<PlannedFile<'a>>, VolumeError> {
    let mut planned = Vec::with_capacity(set.files.len());
    let mut seen = BTreeSet::new();
    for file in &set.files {
        let invalid = |reason| VolumeError::InvalidFilePath {
            volume: volume.to_owned(),
            path: file.path.clone(),
            reason,
        };
        let rel = Path::new(&file.path);
        if file.path.is_empty() || file.path.contains('\0') {
            return Err(invalid("empty or contains a NUL byte"));
        }
        // Split the string itself: `Path::components` hides `a/./b` and `a//b`.
        if file
            .path
            .split('/')
            .any(|part| matches!(part, "" | "." | ".."))
            || file.path.starts_with("..")
        {
            return Err(invalid("must be relative without `.` or `..`"));
        }
        if !seen.insert(rel) {
            return Err(invalid("listed twice"));
        }
        let mode = file.mode.unwrap_or(set.default_mode);
        if mode > 0o777 {
            return Err(VolumeError::InvalidMode {
                volume: volume.to_owned(),
                path: file.path.clone(),
                mode,
            });
        }
        planned.push((rel, mode, file.data.as_slice()));
    }
    Ok(planned)
}

/// Writes each file atomically (directories created as needed, never
/// through a symlink), then applies the fsGroup.
fn write_files(
    volume: &str,
    dir: &Path,
    set: &FileSet,
    fs_group: Option<u32>,
) -> Result<(), VolumeError> {
    let planned = plan_files(volume, set)?;
    let wanted: BTreeSet<&Path> = planned.iter().map(|(rel, _, _)| *rel).collect();
    remove_stale(dir, Path::new(""), &wanted)?;
    for (rel, mode, data) in planned {
        let target = dir.join(rel);
        let mut parent = dir.to_owned();
        for part in rel.parent().into_iter().flat_map(Path::components) {
            parent.push(part);
            match fs::symlink_metadata(&parent) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(VolumeError::InvalidFilePath {
                        volume: volume.to_owned(),
                        path: rel.display().to_string(),
                        reason: "a parent is not a directory",
                    });
                }
                Err(_) => create_dir(&parent, 0o755)?,
            }
        }
        write_atomic_with_mode(&target, data, mode).map_err(|source| VolumeError::Write {
            path: target.clone(),
            source,
        })?;
        // The umask may have cleared bits of the requested mode.
        set_mode(&target, mode)?;
    }
    if let Some(gid) = fs_group {
        own_tree(dir, gid, 0o2050, 0o040)?;
    }
    Ok(())
}

/// Removes what an earlier version of the ConfigMap or Secret left in
/// `dir` that the new one does not list (kubelet's behaviour on update).
fn remove_stale(dir: &Path, rel: &Path, wanted: &BTreeSet<&Path>) -> Result<(), VolumeError> {
    let here = dir.join(rel);
    let err = |source| VolumeError::Remove {
        path: here.clone(),
        source,
    };
    for entry in fs::read_dir(&here).map_err(err)? {
        let entry = entry.map_err(err)?;
        let child = rel.join(entry.file_name());
        let is_dir = entry.file_type().map_err(err)?.is_dir();
        if is_dir && wanted.iter().any(|w| w.starts_with(&child) && *w != child) {
            remove_stale(dir, &child, wanted)?;
        } else if is_dir {
            remove_all(&dir.join(&child))?;
        } else if !wanted.contains(child.as_path()) {
            let path = dir.join(&child);
            fs::remove_file(&path).map_err(|source| VolumeError::Remove { path, source })?;
        }
    }
    Ok(())
}

/// `/etc/hosts` and `/etc/hostname` for the pod's containers, written into
/// the pod's state directory; hostNetwork pods see the host's.
fn etc_files(pod: &Pod, pod_state_dir: &Path) -> Result<EtcFiles, VolumeError> {
    let hosts = pod_state_dir.join("hosts");
    let hostname = pod_state_dir.join("hostname");
    let (hosts_text, name) = if pod.host_network {
        let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let text = fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts_template(name.trim()));
        (text, name.trim().to_owned())
    } else {
        (hosts_template(&pod.name), pod.name.clone())
    };
    // Without fsync: they are written again whenever the sandbox is made.
    let write = |path: &Path, text: &str| {
        crate::state::write_atomic_volatile_with_mode(path, text.as_bytes(), 0o644).map_err(
            |source| VolumeError::Write {
                path: path.to_owned(),
                source,
            },
        )
    };
    write(&hosts, &hosts_text)?;
    write(&hostname, &format!("{name}\n"))?;
    Ok(EtcFiles {
        hosts,
        hostname,
        resolv_conf: Path::new(HOST_RESOLV_CONF)
            .is_file()
            .then(|| HOST_RESOLV_CONF.into()),
    })
}

fn hosts_template(name: &str) -> String {
    format!(
        "# Managed by flotilla-agent.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n\
         127.0.1.1\t{name}\n"
    )
}

/// Unmounts the pod's tmpfs volumes and removes its volume directories and
/// `/etc` files. Host paths are never touched. Already gone is fine.
pub fn teardown(pod_state_dir: &Path, pod_run_dir: &Path) -> Result<(), VolumeError> {
    let memory = pod_run_dir.join("volumes");
    match fs::read_dir(&memory) {
        Ok(entries) => {
            for entry in entries {
                let path = entry
                    .map_err(|source| VolumeError::Remove {
                        path: memory.clone(),
                        source,
                    })?
                    .path();
                unmount_if_mounted(&path)?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(VolumeError::Remove {
                path: memory,
                source,
            });
        }
    }
    for path in [memory, pod_state_dir.join("volumes")] {
        remove_all(&path)?;
    }
    for name in ["hosts", "hostname"] {
        let path = pod_state_dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(VolumeError::Remove { path, source: e });
            }
            _ => {}
        }
    }
    Ok(())
}

fn unmount_if_mounted(path: &Path) -> Result<(), VolumeError> {
    let Ok(canonical) = fs::canonicalize(path) else {
        return Ok(());
    };
    // Stacked mounts (a crash between mount and record) come off one by one.
    mount::unmount_all(&canonical).map_err(|source| VolumeError::Unmount {
        path: path.to_owned(),
        source,
    })
}

fn remove_all(path: &Path) -> Result<(), VolumeError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(VolumeError::Remove {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
