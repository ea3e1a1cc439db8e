//! Applying one layer to a rootfs, with containerd `applyNaive` semantics.
//!
//! For each tar entry:
//! 1. The name is cleaned lexically (`.` and a leading `/` dropped, `..`
//!    applied); a `..` that climbs above the root refuses the layer. The root
//!    itself (`./`) is skipped.
//! 2. The parent is resolved inside the rootfs ([`walk`] with
//!    [`Climb::Refuse`]) and missing directories are created (0755).
//! 3. Whiteouts: `.wh..wh..opq` removes every child of its directory that
//!    this layer did not write (recursively: a same-layer directory keeps only
//!    its same-layer children), since whiteouts apply to lower layers only;
//!    `.wh.<name>` removes `<name>` unless this layer wrote it. Other
//!    `.wh..wh.*` names are aufs metadata and are skipped. Whiteout files are
//!    never written.
//! 4. Anything at the entry's path is removed, except a directory when the
//!    entry is a directory (its metadata is updated). The last component is
//!    never followed.
//! 5. Regular files are created with `O_CREAT|O_EXCL|O_NOFOLLOW`, filled,
//!    then chowned and chmodded (in that order, so setuid and setgid bits
//!    survive); directories are made; symlinks are stored verbatim; hard
//!    links point at their target resolved inside the rootfs (last component
//!    not followed); FIFOs are made with `mkfifo`. Character and block
//!    devices are refused.
//! 6. After the last entry, directory modification times are set (children
//!    change them while the layer is written).
//!
//! Ownership: as root the tar's uid and gid are applied and failures are
//! errors; otherwise a `chown` refused with `EPERM` or `EINVAL` is ignored so
//! that tests and rootless use work with the caller's ids. Of the extended
//! attributes only `security.capability` (file capabilities, as on `ping`) is
//! applied, from the PAX `SCHILY.xattr.` records. Symlink and FIFO times are
//! left at the time of writing.
//!
//! The diff id is the SHA-256 of the whole uncompressed stream, including the
//! end-of-archive blocks and any padding after them.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::{Entry, EntryType, Header};

use super::UnpackError;
use super::compression::Compression;
use super::path::{Climb, WalkError, walk};

/// A layer's diff id: `sha256:<hex>` of its uncompressed tar stream, to be
/// compared with the image config's `rootfs.diff_ids`.
pub type LayerDigest = String;

const OPAQUE_MARKER: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const CAPABILITY_XATTR: &str = "security.capability";
const PAX_CAPABILITY: &str = "SCHILY.xattr.security.capability";

/// Applies the layer read from `layer` (compressed as `compression`) on top
/// of the directory `rootfs`, and returns the layer's diff id.
///
/// The rootfs must exist. On error the rootfs is left partly written (see the
/// module documentation of [`crate::unpack`]); nothing outside it is touched.
pub fn apply_layer(
    rootfs: &Path,
    layer: impl Read,
    compression: Compression,
) -> Result<LayerDigest, UnpackError> {
    let metadata = fs::metadata(rootfs).map_err(|source| io_error(rootfs, source))?;
    if !metadata.is_dir() {
        let source = io::Error::from_raw_os_error(libc::ENOTDIR);
        return Err(io_error(rootfs, source));
    }
    let mut archive = tar::Archive::new(Sha256Reader::new(compression.decoder(layer)));
    let mut applier = Applier {
        root: rootfs,
        unpacked: HashSet::new(),
        dir_times: Vec::new(),
        as_root: crate::sys::fs::effective_uid() == 0,
    };
    for entry in archive.entries().map_err(corrupt)? {
        applier.apply(&mut entry.map_err(corrupt)?)?;
    }
    applier.set_dir_times()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    Ok(rest.finish())
}

struct Applier<'a> {
    root: &'a Path,
    /// Host paths this layer wrote, with all their ancestors below the root.
    unpacked: HashSet<PathBuf>,
    /// Directories this layer wrote and the modification time to give them.
    dir_times: Vec<(PathBuf, SystemTime)>,
    as_root: bool,
}

impl Applier<'_> {
    fn apply<R: Read>(&mut self, entry: &mut Entry<'_, R>) -> Result<(), UnpackError> {
        let name = entry.path().map_err(corrupt)?.into_owned();
        let shown = name.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let rel = clean(&name).ok_or_else(|| UnpackError::Escape {
            entry: shown.clone(),
            reason: "its name climbs above the root with `..`".to_string(),
        })?;
        let Some(base) = rel.file_name() else {
            return Ok(()); // the root itself: its metadata belongs to the caller
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let base_bytes = base.as_bytes();

        let mut parent_whiteout = parent.components().map(|c| c.as_os_str().as_bytes());
        if parent_whiteout.any(|c| c.starts_with(WHITEOUT_PREFIX)) {
            if rel.as_os_str().as_bytes().starts_with(WHITEOUT_META_PREFIX) {
                return Ok(()); // inside aufs metadata such as `.wh..wh.plnk/`
            }
            return Err(UnpackError::InvalidWhiteout {
                entry: shown,
                reason: "a whiteout cannot have children".to_string(),
            });
        }
        if base == OPAQUE_MARKER {
            let dir = self.parent_dir(&shown, parent)?;
            self.clear_opaque(&dir)?;
            self.record(&dir);
            return Ok(());
        }
        if base_bytes.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(()); // aufs metadata (`.wh..wh.plnk`, `.wh..wh.aufs`)
        }
        if let Some(hidden) = base_bytes.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&shown, parent, OsStr::from_bytes(hidden));
        }

        let dir = self.parent_dir(&shown, parent)?;
        let path = dir.join(base);
        self.make_room(&path, kind.is_dir())?;
        let header = entry.header().clone();
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.write_file(&shown, &path, &header, entry)?
            }
            EntryType::Directory => self.write_dir(&shown, &path, &header)?,
            EntryType::Symlink => {
                let target = link_name(&shown, entry)?;
                std::os::unix::fs::symlink(&target, &path).map_err(|e| io_error(&path, e))?;
                self.chown(&shown, &path, &header, |uid, gid| {
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                })?;
            }
            EntryType::Link => self.write_hard_link(&shown, &path, entry)?,
            EntryType::Fifo => {
                crate::sys::fs::mkfifo(&path, 0o600).map_err(|e| io_error(&path, e))?;
                self.chown(&shown, &path, &header, |uid, gid| {
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                })?;
                let mode = header_mode(&shown, &header)?;
                fs::set_permissions(&path, Permissions::from_mode(mode))
                    .map_err(|e| io_error(&path, e))?;
            }
            EntryType::Char | EntryType::Block => {
                return Err(UnpackError::DeviceNode { entry: shown });
            }
            other => {
                return Err(UnpackError::InvalidEntry {
                    entry: shown,
                    reason: format!("unsupported tar entry type {:?}", other.as_byte() as char),
                });
            }
        }
        self.record(&path);
        Ok(())
    }

    /// Resolves `parent` inside the root, refusing escapes, and creates it
    /// (and its missing ancestors) if needed.
    fn parent_dir(&self, shown: &str, parent: &Path) -> Result<PathBuf, UnpackError> {
        let dir = self.resolve(shown, parent, true)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(|e| io_error(&dir, e))?;
        Ok(dir)
    }

    fn resolve(&self, shown: &str, path: &Path, follow_last: bool) -> Result<PathBuf, UnpackError> {
        walk(self.root, path, follow_last, Climb::Refuse).map_err(|err| match err {
            WalkError::Io(source) => io_error(&self.root.join(path), source),
            WalkError::Climb { symlink } => UnpackError::Escape {
                entry: shown.to_string(),
                reason: match symlink {
                    Some((link, target)) => format!(
                        "it goes through the symlink {} -> {}, which climbs above the root",
                        link.display(),
                        target.display()
                    ),
                    None => "its path climbs above the root with `..`".to_string(),
                },
            },
        })
    }

    /// `.wh.<hidden>`: removes `<hidden>` from the lower layers.
    fn whiteout(&self, shown: &str, parent: &Path, hidden: &OsStr) -> Result<(), UnpackError> {
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(UnpackError::InvalidWhiteout {
                entry: shown.to_string(),
                reason: format!("{hidden:?} cannot be whited out"),
            });
        }
        let dir = match self.resolve(shown, parent, true) {
            Ok(dir) => dir,
            // Nothing lower can be there when the parent is a regular file.
            Err(UnpackError::Io { source, .. })
                if source.kind() == io::ErrorKind::NotADirectory =>
            {
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        let path = dir.join(hidden);
        if self.unpacked.contains(&path) {
            return Ok(()); // whiteouts apply to lower layers only
        }
        remove_any(&path)
    }

    /// `.wh..wh..opq`: removes what lower layers put in `dir`.
    fn clear_opaque(&self, dir: &Path) -> Result<(), UnpackError> {
        let children = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
        for child in children {
            let child = child.map_err(|e| io_error(dir, e))?.path();
            if !self.unpacked.contains(&child) {
                remove_any(&child)?;
                continue;
            }
            let file_type = fs::symlink_metadata(&child).map_err(|e| io_error(&child, e))?;
            if file_type.is_dir() {
                self.clear_opaque(&child)?;
            }
        }
        Ok(())
    }

    /// Removes what is at `path` unless both it and the entry are
    /// directories (those merge).
    fn make_room(&self, path: &Path, entry_is_dir: bool) -> Result<(), UnpackError> {
        match fs::symlink_metadata(path) {
            Ok(existing) if existing.is_dir() && entry_is_dir => Ok(()),
            Ok(_) => remove_any(path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error(path, err)),
        }
    }

    fn write_file<R: Read>(
        &self,
        shown: &str,
        path: &Path,
        header: &Header,
        entry: &mut Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let capability = file_capability(entry).map_err(corrupt)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(corrupt)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|e| io_error(path, e))?;
        }
        self.chown(shown, path, header, |uid, gid| {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
        })?;
        let mode = header_mode(shown, header)?;
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| io_error(path, e))?;
        let times = FileTimes::new().set_modified(header_mtime(shown, header)?);
        file.set_times(times).map_err(|e| io_error(path, e))?;
        // Last: a chown clears file capabilities.
        if let Some(capability) = capability {
            self.set_capability(path, &file, &capability)?;
        }
        Ok(())
    }

    /// Applies a `security.capability` xattr. Ignored, as containerd does,
    /// when the file system has no xattrs, and when not running as root.
    fn set_capability(&self, path: &Path, file: &File, value: &[u8]) -> Result<(), UnpackError> {
        match crate::sys::fs::fsetxattr(file, CAPABILITY_XATTR, value) {
            Ok(()) => Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::warn!(path = %path.display(), "file system has no xattrs: file capability dropped");
                Ok(())
            }
            Err(err) if !self.as_root && err.raw_os_error() == Some(libc::EPERM) => Ok(()),
            Err(err) => Err(io_error(path, err)),
        }
    }

    fn write_dir(&mut self, shown: &str, path: &Path, header: &Header) -> Result<(), UnpackError> {
        match fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {} // merged with a lower dir
            Err(err) => return Err(io_error(path, err)),
        }
        self.chown(shown, path, header, |uid, gid| {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        })?;
        let mode = header_mode(shown, header)?;
        fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|e| io_error(path, e))?;
        self.dir_times
            .push((path.to_path_buf(), header_mtime(shown, header)?));
        Ok(())
    }

    fn write_hard_link<R: Read>(
        &self,
        shown: &str,
        path: &Path,
        entry: &Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let target_name = link_name(shown, entry)?;
        let escape = |reason: &str| UnpackError::Escape {
            entry: shown.to_string(),
            reason: format!("its hard link target {} {reason}", target_name.display()),
        };
        let target_rel = clean(&target_name).ok_or_else(|| escape("climbs above the root"))?;
        let target = match self.resolve(shown, &target_rel, false) {
            Err(UnpackError::Escape { reason, .. }) => return Err(escape(&reason)),
            other => other?,
        };
        let invalid = |reason: &str| UnpackError::InvalidEntry {
            entry: shown.to_string(),
            reason: format!("hard link target {} {reason}", target_name.display()),
        };
        match fs::symlink_metadata(&target) {
            Ok(metadata) if metadata.is_dir() => return Err(invalid("is a directory")),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(invalid("does not exist"));
            }
            Err(err) => return Err(io_error(&target, err)),
        }
        // std's hard_link is linkat(2) without AT_SYMLINK_FOLLOW: a symlink
        // target is linked itself, not followed.
        fs::hard_link(&target, path).map_err(|e| io_error(path, e))
    }

    /// Applies the entry's owner with `op`, tolerating `EPERM`/`EINVAL` when
    /// not running as root.
    fn chown(
        &self,
        shown: &str,
        path: &Path,
        header: &Header,
        op: impl FnOnce(u32, u32) -> io::Result<()>,
    ) -> Result<(), UnpackError> {
        let id = |value: io::Result<u64>, what: &str| {
            value
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| UnpackError::InvalidEntry {
                    entry: shown.to_string(),
                    reason: format!("its {what} is not a valid 32-bit id"),
                })
        };
        let uid = id(header.uid(), "uid")?;
        let gid = id(header.gid(), "gid")?;
        match op(uid, gid) {
            Ok(()) => Ok(()),
            Err(err)
                if !self.as_root
                    && matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL)) =>
            {
                Ok(())
            }
            Err(err) => Err(io_error(path, err)),
        }
    }

    /// Records `path` and its ancestors below the root as written by this
    /// layer.
    fn record(&mut self, path: &Path) {
        let mut current = Some(path);
        while let Some(p) = current {
            if p == self.root || !p.starts_with(self.root) || !self.unpacked.insert(p.to_path_buf())
            {
                break;
            }
            current = p.parent();
        }
    }

    /// Sets the modification times of the directories this layer wrote; one
    /// replaced later in the layer by something else is skipped.
    fn set_dir_times(&self) -> Result<(), UnpackError> {
        for (path, mtime) in &self.dir_times {
            let dir = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path);
            let dir = match dir {
                Ok(dir) => dir,
                Err(err)
                    if err.kind() == io::ErrorKind::NotFound
                        || matches!(
                            err.raw_os_error(),
                            Some(libc::ELOOP) | Some(libc::ENOTDIR)
                        ) =>
                {
                    continue;
                }
                Err(err) => return Err(io_error(path, err)),
            };
            set_modified(&dir, *mtime).map_err(|e| io_error(path, e))?;
        }
        Ok(())
    }
}

fn set_modified(file: &File, mtime: SystemTime) -> io::Result<()> {
    file.set_times(FileTimes::new().set_modified(mtime))
}

/// Cleans an archive name lexically: drops `/` and `.`, applies `..`.
/// `None` when a `..` would climb above the root.
fn clean(name: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for component in name.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(part) => parts.push(part),
        }
    }
    Some(parts.iter().collect())
}

/// The `security.capability` xattr from the entry's PAX records
/// (`SCHILY.xattr.security.capability`), if any. Other xattrs are not
/// applied: `trusted.*` and `security.selinux` must not come from an image,
/// and nothing else affects how a container runs.
fn file_capability<R: Read>(entry: &mut Entry<'_, R>) -> io::Result<Option<Vec<u8>>> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(None);
    };
    for extension in extensions {
        let extension = extension?;
        if extension.key_bytes() == PAX_CAPABILITY.as_bytes() {
            return Ok(Some(extension.value_bytes().to_vec()));
        }
    }
    Ok(None)
}

fn link_name<R: Read>(shown: &str, entry: &Entry<'_, R>) -> Result<PathBuf, UnpackError> {
    match entry.link_name().map_err(corrupt)? {
        Some(target) if !target.as_os_str().is_empty() => Ok(target.into_owned()),
        _ => Err(UnpackError::InvalidEntry {
            entry: shown.to_string(),
            reason: "its link has no target".to_string(),
        }),
    }
}

fn header_mode(shown: &str, header: &Header) -> Result<u32, UnpackError> {
    let mode = header.mode().map_err(|_| UnpackError::InvalidEntry {
        entry: shown.to_string(),
        reason: "its mode is not a number".to_string(),
    })?;
    Ok(mode & 0o7777)
}

fn header_mtime(shown: &str, header: &Header) -> Result<SystemTime, UnpackError> {
    let seconds = header.mtime().map_err(|_| UnpackError::InvalidEntry {
        entry: shown.to_string(),
        reason: "its modification time is not a number".to_string(),
    })?;
    Ok(SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .unwrap_or(SystemTime::UNIX_EPOCH))
}

/// Removes a file, symlink or (recursively) directory; a missing path is
/// fine.
fn remove_any(path: &Path) -> Result<(), UnpackError> {
    let result = match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error(path, err)),
    }
}

fn io_error(path: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(source: io::Error) -> UnpackError {
    UnpackError::Corrupt { source }
}

/// Passes bytes through while hashing them with SHA-256.
struct Sha256Reader<R> {
    inner: R,
    digest: ring::digest::Context,
}

impl<R: Read> Sha256Reader<R> {
    fn new(inner: R) -> Self {
        Sha256Reader {
            inner,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    fn finish(self) -> LayerDigest {
        crate::image::Sha256::from_ring(self.digest.finish()).to_string()
    }
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
