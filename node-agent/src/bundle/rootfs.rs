//! A container's writable root filesystem at `<container_dir>/rootfs`: an
//! overlayfs mount over the image's unpacked rootfs (`upper/` and `work/`
//! beside it), or a full copy where overlayfs is not available.
//!
//! The copy keeps modes, owners and symlinks; hard links become separate
//! files, and extended attributes (file capabilities) and times are not kept.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sys::mount::{self, MountFlags};

/// Written once a copied rootfs is complete; a copy without it is partial.
const COPY_MARKER: &str = "rootfs.copied";

/// How a container's rootfs was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootfsKind {
    Overlay,
    Copy,
}

/// Whether [`prepare_with`] may use overlayfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// overlayfs, falling back to a copy when the mount fails.
    OverlayOrCopy,
    /// Always copy (tests, or filesystems known not to support overlayfs).
    Copy,
}

/// Errors making or removing a rootfs. All are I/O and may work on retry,
/// except [`RootfsError::UnsupportedFile`] and [`RootfsError::BadPath`].
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("image rootfs {path} is not a directory")]
    NoImage { path: PathBuf },
    #[error("path {path} cannot be used in overlayfs options (contains ',', ':' or '\\')")]
    BadPath { path: PathBuf },
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot copy {path}: {source}")]
    Copy { path: PathBuf, source: io::Error },
    #[error("cannot copy {path}: {kind} files are not supported")]
    UnsupportedFile { path: PathBuf, kind: &'static str },
    #[error("cannot unmount {path}: {source}")]
    Unmount { path: PathBuf, source: io::Error },
    #[error("cannot remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// [`prepare_with`] using overlayfs where it works.
pub fn prepare(image_rootfs: &Path, container_dir: &Path) -> Result<RootfsKind, RootfsError> {
    prepare_with(image_rootfs, container_dir, Strategy::OverlayOrCopy)
}

/// Makes `<container_dir>/rootfs`. Idempotent: an existing overlay mount
/// or a completed copy (after an agent restart) is kept as it is; a partial
/// copy is redone.
pub fn prepare_with(
    image_rootfs: &Path,
    container_dir: &Path,
    strategy: Strategy,
) -> Result<RootfsKind, RootfsError> {
    if !image_rootfs.is_dir() {
        return Err(RootfsError::NoImage {
            path: image_rootfs.to_owned(),
        });
    }
    let rootfs = container_dir.join("rootfs");
    let fresh = fs::symlink_metadata(&rootfs).is_err();
    create(&rootfs)?;
    let rootfs = canonical(&rootfs)?;
    // A directory made just now holds no mount: only one that existed
    // (after an agent restart) is looked up in mountinfo, which grows with
    // every container.
    let mounted = !fresh
        && mount::is_mount_point(&rootfs).map_err(|source| RootfsError::Create {
            path: rootfs.clone(),
            source,
        })?;
    if mounted {
        return Ok(RootfsKind::Overlay);
    }
    if container_dir.join(COPY_MARKER).exists() {
        return Ok(RootfsKind::Copy);
    }
    if strategy == Strategy::OverlayOrCopy {
        match mount_overlay(image_rootfs, container_dir, &rootfs) {
            Ok(()) => return Ok(RootfsKind::Overlay),
            Err(RootfsError::Create { path, source }) if path == rootfs => {
                tracing::warn!(rootfs = %rootfs.display(), error = %source,
                    "overlayfs mount failed; copying the image rootfs instead");
            }
            Err(e) => return Err(e),
        }
        for dir in ["upper", "work"] {
            remove_all(&container_dir.join(dir))?;
        }
    }
    copy_rootfs(image_rootfs, container_dir, &rootfs)?;
    Ok(RootfsKind::Copy)
}

fn create(path: &Path) -> Result<(), RootfsError> {
    fs::create_dir_all(path).map_err(|source| RootfsError::Create {
        path: path.to_owned(),
        source,
    })
}

fn canonical(path: &Path) -> Result<PathBuf, RootfsError> {
    fs::canonicalize(path).map_err(|source| RootfsError::Create {
        path: path.to_owned(),
        source,
    })
}

/// A mount failure is reported as `Create { path: rootfs }` so that the
/// caller falls back to a copy; other failures are real errors.
fn mount_overlay(
    image_rootfs: &Path,
    container_dir: &Path,
    rootfs: &Path,
) -> Result<(), RootfsError> {
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    create(&upper)?;
    create(&work)?;
    let lower = canonical(image_rootfs)?;
    let upper = canonical(&upper)?;
    let work = canonical(&work)?;
    for path in [&lower, &upper, &work] {
        if path.to_string_lossy().contains([',', ':', '\\']) {
            return Err(RootfsError::BadPath { path: path.clone() });
        }
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount::mount_fs("overlay", rootfs, "overlay", MountFlags::default(), &data).map_err(|source| {
        RootfsError::Create {
            path: rootfs.to_owned(),
            source,
        }
    })
}

fn copy_rootfs(
    image_rootfs: &Path,
    container_dir: &Path,
    rootfs: &Path,
) -> Result<(), RootfsError> {
    // A partial copy from before a crash is started again.
    remove_all(rootfs)?;
    copy_tree(image_rootfs, rootfs)?;
    let marker = container_dir.join(COPY_MARKER);
    crate::state::write_atomic_with_mode(&marker, b"", 0o600).map_err(|source| {
        RootfsError::Create {
            path: marker,
            source,
        }
    })
}

/// Copies `from` to `to` (which must not exist) without following symlinks.
fn copy_tree(from: &Path, to: &Path) -> Result<(), RootfsError> {
    let err = |source| RootfsError::Copy {
        path: from.to_owned(),
        source,
    };
    let meta = fs::symlink_metadata(from).map_err(err)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(from).map_err(err)?;
        std::os::unix::fs::symlink(target, to).map_err(err)?;
        std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())).map_err(err)?;
        return Ok(());
    }
    if ft.is_dir() {
        fs::create_dir(to).map_err(err)?;
        for entry in fs::read_dir(from).map_err(err)? {
            let name = entry.map_err(err)?.file_name();
            copy_tree(&from.join(&name), &to.join(&name))?;
        }
    } else if ft.is_file() {
        fs::copy(from, to).map_err(err)?;
    } else if std::os::unix::fs::FileTypeExt::is_fifo(&ft) {
        crate::sys::fs::mkfifo(to, 0o600).map_err(err)?;
    } else {
        return Err(RootfsError::UnsupportedFile {
            path: from.to_owned(),
            kind: "device or socket",
        });
    }
    // Owner first: chown clears the setuid and setgid bits.
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())).map_err(err)?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(err)?;
    Ok(())
}

fn remove_all(path: &Path) -> Result<(), RootfsError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RootfsError::Remove {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Unmounts the rootfs (lazily if it is busy) and removes `rootfs/`,
/// `upper/`, `work/` and the copy marker. Already released is fine.
pub fn release(container_dir: &Path) -> Result<(), RootfsError> {
    let rootfs = container_dir.join("rootfs");
    if let Ok(canonical) = fs::canonicalize(&rootfs) {
        mount::unmount_all(&canonical).map_err(|source| RootfsError::Unmount {
            path: rootfs.clone(),
            source,
        })?;
    }
    // The marker goes first: a crash below leaves a partial copy that the
    // next prepare redoes, never one it trusts.
    match fs::remove_file(container_dir.join(COPY_MARKER)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(RootfsError::Remove {
                path: container_dir.join(COPY_MARKER),
                source: e,
            });
        }
        _ => {}
    }
    for dir in ["rootfs", "upper", "work"] {
        remove_all(&container_dir.join(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
