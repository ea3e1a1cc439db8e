//! Mounts: `mount(2)` (filesystems, bind mounts, propagation), `umount2(2)`,
//! `statfs(2)`'s filesystem magic, and whether a path is a mount point (from
//! `/proc/self/mountinfo`).

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use super::{c_path, c_str};

/// `TMPFS_MAGIC` from `linux/magic.h`.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
/// `CGROUP2_SUPER_MAGIC`: a cgroup v2 mount.
pub const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
/// `CGROUP_SUPER_MAGIC`: a cgroup v1 hierarchy.
pub const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
/// `OVERLAYFS_SUPER_MAGIC`.
pub const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// Flags for [`mount_fs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl MountFlags {
    /// `nosuid,nodev`: for volumes and other data mounts.
    pub const DATA: MountFlags = MountFlags {
        nosuid: true,
        nodev: true,
        noexec: false,
    };

    fn bits(self) -> libc::c_ulong {
        let mut bits = 0;
        if self.nosuid {
            bits |= libc::MS_NOSUID;
        }
        if self.nodev {
            bits |= libc::MS_NODEV;
        }
        if self.noexec {
            bits |= libc::MS_NOEXEC;
        }
        bits
    }
}

/// `mount(2)`; `None` passes NULL, which the kernel accepts for the source
/// and type of a remount or propagation change and for absent data.
fn mount_raw(
    source: Option<&CStr>,
    target: &Path,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let target = c_path(target)?;
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is NULL or a valid NUL-terminated string that
    // lives until the call returns; mount(2) only reads them.
    let rc = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mounts a filesystem of type `fstype` from `source` at `target` with
/// `flags` and the `data` options (e.g. `"size=1048576,mode=0755"`, or
/// overlayfs' `lowerdir=…`).
pub fn mount_fs(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> io::Result<()> {
    mount_raw(
        Some(&c_str(source)?),
        target,
        Some(&c_str(fstype)?),
        flags.bits(),
        Some(&c_str(data)?),
    )
}

/// Changes the options of the mount at `target` (`MS_REMOUNT`), e.g. a
/// tmpfs's `size=`; `flags` must repeat the mount's flags.
pub fn remount(target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
    mount_raw(
        None,
        target,
        None,
        libc::MS_REMOUNT | flags.bits(),
        Some(&c_str(data)?),
    )
}

/// `mount --bind source target`.
pub fn bind_mount(source: &Path, target: &Path) -> io::Result<()> {
    mount_raw(
        Some(&c_path(source)?),
        target,
        Some(c"none"),
        libc::MS_BIND,
        None,
    )
}

/// Makes `dir` a mount point of itself (`mount --rbind dir dir`) when it is
/// not one yet, then marks it private so that mounts under it are neither
/// propagated to nor received from other mount namespaces.
pub fn make_private_mount_point(dir: &Path) -> io::Result<()> {
    if !is_mount_point(&dir.canonicalize()?)? {
        let source = c_path(dir)?;
        mount_raw(
            Some(&source),
            dir,
            Some(c"none"),
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
    }
    mount_raw(
        Some(c"none"),
        dir,
        Some(c"none"),
        libc::MS_PRIVATE | libc::MS_REC,
        None,
    )
}

/// How [`unmount`] detaches a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmount {
    /// Fails with `EBUSY` while the mount is in use.
    Normal,
    /// `MNT_DETACH`: gone from the namespace now, freed once no longer in use.
    Lazy,
}

/// `umount2(2)` with `UMOUNT_NOFOLLOW`, so a symlink planted at `target`
/// is never followed to somewhere else.
pub fn unmount(target: &Path, how: Unmount) -> io::Result<()> {
    let target = c_path(target)?;
    let mut flags = libc::UMOUNT_NOFOLLOW;
    if how == Unmount::Lazy {
        flags |= libc::MNT_DETACH;
    }
    // SAFETY: `target` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::umount2(target.as_ptr(), flags) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Detaches the mount at `target` now ([`Unmount::Lazy`]); the kernel frees
/// it when its last user goes. Not mounted (`EINVAL`) and missing (`ENOENT`)
/// are fine: there is nothing to detach.
pub fn detach_if_mounted(target: &Path) -> io::Result<()> {
    match unmount(target, Unmount::Lazy) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(()),
        other => other,
    }
}

/// Unmounts everything mounted at `canonical` (an absolute path free of
/// symlinks, as mountinfo shows), one stacked mount after the other (a crash
/// between a mount and its record can leave two); a busy mount is detached
/// lazily.
pub fn unmount_all(canonical: &Path) -> io::Result<()> {
    while is_mount_point(canonical)? {
        match unmount(canonical, Unmount::Normal) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                unmount(canonical, Unmount::Lazy)?;
            }
            other => other?,
        }
    }
    Ok(())
}

/// The filesystem type magic (`f_type` of `statfs(2)`) of the filesystem
/// holding `path`.
// f_type is a c_long on some targets and a c_uint on others.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub fn filesystem_magic(path: &Path) -> io::Result<u64> {
    let path = c_path(path)?;
    let mut stat = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `stat` points to
    // writable memory of the size statfs fills.
    let rc = unsafe { libc::statfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it initialised the whole struct.
    let stat = unsafe { stat.assume_init() };
    // A negative f_type on 32-bit targets is a magic with the top bit set:
    // reinterpret the bits rather than convert the value.
    Ok(u64::from(stat.f_type as u32))
}

/// One line of `/proc/<pid>/mountinfo`, the fields this crate uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Where it is mounted, with the kernel's octal escapes decoded.
    pub mount_point: PathBuf,
    /// The path inside the mounted filesystem that appears at `mount_point`.
    pub root: PathBuf,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options, e.g. `rw,memory` for a cgroup v1 hierarchy.
    pub super_options: String,
}

/// Parses mountinfo text (see `proc(5)`); lines that do not have the
/// documented shape are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ');
    let root = left.nth(3)?;
    let mount_point = left.next()?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let source = right.next()?;
    let super_options = right.next().unwrap_or("");
    Some(MountInfo {
        mount_point: PathBuf::from(unescape_octal(mount_point)),
        root: PathBuf::from(unescape_octal(root)),
        fstype: fstype.to_owned(),
        source: unescape_octal(source),
        super_options: super_options.to_owned(),
    })
}

/// Decodes the `\040`-style escapes the kernel writes for space, tab,
/// newline and backslash.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` is a mount point in this process's mount namespace.
/// `path` should be absolute and free of symlinks, as mountinfo shows
/// canonical paths.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    Ok(mounts_at(path)? > 0)
}

/// How many mounts are stacked at `path` in this process's mount namespace
/// (0 if it is not a mount point); `path` as for [`is_mount_point`].
pub fn mounts_at(path: &Path) -> io::Result<usize> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text)
        .iter()
        .filter(|m| m.mount_point == path)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_with_escapes_and_optional_fields() {
        let text = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                    garbage\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].mount_point, Path::new("/mnt two"));
        assert_eq!(mounts[0].root, Path::new("/mnt1"));
        assert_eq!(mounts[0].fstype, "ext3");
        assert_eq!(mounts[1].super_options, "rw,cpu");
    }

    #[test]
    fn a_trailing_backslash_is_kept_literally() {
        assert_eq!(unescape_octal("a\\"), "a\\");
        assert_eq!(unescape_octal("a\\13"), "a\\13");
        assert_eq!(unescape_octal("a\\134b"), "a\\b");
        assert_eq!(unescape_octal(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape_octal(r"/trailing\04"), r"/trailing\04");
    }

    #[test]
    fn proc_is_a_mount_point_and_its_subdirectory_is_not() {
        assert!(is_mount_point(Path::new("/")).expect("mountinfo"));
        assert!(is_mount_point(Path::new("/proc")).expect("mountinfo"));
        assert!(!is_mount_point(Path::new("/proc/self")).expect("mountinfo"));
    }

    #[test]
    fn stacked_mounts_all_come_off_and_detaching_nothing_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().canonicalize().expect("canonical").join("t");
        std::fs::create_dir(&target).expect("mkdir");
        for _ in 0..2 {
            mount_fs("tmpfs", &target, "tmpfs", MountFlags::DATA, "size=65536")
                .expect("mount tmpfs");
        }
        let stacked = mounts_at(&target);
        let removed = unmount_all(&target);
        let left = is_mount_point(&target);
        if left.as_ref().is_ok_and(|l| *l) {
            let _ = unmount(&target, Unmount::Lazy);
            let _ = unmount(&target, Unmount::Lazy);
        }
        assert_eq!(stacked.expect("mountinfo"), 2);
        removed.expect("unmount_all");
        assert!(!left.expect("mountinfo"));
        detach_if_mounted(&target).expect("not mounted is fine");
        detach_if_mounted(&target.join("missing")).expect("missing is fine");
    }

    #[test]
    fn a_private_self_bind_mount_is_made_once_and_a_bind_mount_shows_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical").join("root");
        let source = dir.path().join("source");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::create_dir(&source).expect("mkdir");
        std::fs::write(source.join("f"), b"seen").expect("write");
        let target = root.join("target");
        std::fs::create_dir(&target).expect("mkdir");
        let first = make_private_mount_point(&root);
        // A second call must not stack another bind mount.
        let second = make_private_mount_point(&root);
        let bound = bind_mount(&source, &target);
        let seen = std::fs::read(target.join("f"));
        let count = mounts_at(&root);
        let _ = unmount(&target, Unmount::Lazy);
        let _ = unmount_all(&root);
        first.expect("first");
        second.expect("second");
        bound.expect("bind");
        assert_eq!(seen.expect("read through the bind mount"), b"seen");
        assert_eq!(count.expect("mountinfo"), 1);
        assert!(!is_mount_point(&root).expect("mountinfo"));
    }

    #[test]
    fn a_tmpfs_mount_reports_its_magic_grows_by_remount_and_unmounts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("t");
        std::fs::create_dir(&target).expect("mkdir");
        mount_fs(
            "tmpfs",
            &target,
            "tmpfs",
            MountFlags::DATA,
            "size=65536,mode=0700",
        )
        .expect("mount tmpfs");
        let magic = filesystem_magic(&target);
        let mounted = is_mount_point(&target);
        let grown = remount(&target, MountFlags::DATA, "size=131072")
            .and_then(|()| crate::sys::filesystem_space(&target));
        unmount(&target, Unmount::Normal).expect("unmount");
        assert_eq!(grown.expect("remount").total_bytes, 131072);
        assert_eq!(magic.expect("statfs"), TMPFS_MAGIC);
        assert!(mounted.expect("mountinfo"));
        assert!(!is_mount_point(&target).expect("mountinfo"));
    }
}
