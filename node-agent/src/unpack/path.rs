//! Resolving a path inside a root directory the way a process chrooted there
//! would see it (securejoin semantics), without ever following anything that
//! leads outside the root.
//!
//! The walk goes component by component with `lstat`:
//! - `.` and a leading `/` are skipped; `..` goes up one level and is clamped
//!   at the root (as `/..` is `/`);
//! - a symlink is read: an absolute target restarts the walk at the root, a
//!   relative one is spliced in front of the components still to walk; at most
//!   [`MAX_SYMLINK_HOPS`] symlinks are followed, then the walk fails with
//!   `ELOOP`;
//! - a component that does not exist ends the checks for it: it and the rest
//!   are joined lexically (they cannot be symlinks, as they do not exist).
//!
//! Every `lstat` is on `root` joined with components that are directories or
//! missing, so nothing outside `root` is ever looked at or followed. The
//! result is only as good as the tree is still: a concurrent writer could swap
//! a directory for a symlink afterwards. The agent is the only writer of a
//! rootfs while it builds it, so that race does not apply here.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The kernel's limit on symlinks followed in one lookup (`MAXSYMLINKS`).
pub const MAX_SYMLINK_HOPS: u32 = 40;

/// Resolves `path` inside `root` as if `root` were `/`, returning a host path
/// that starts with `root`.
///
/// With `follow_last` false a symlink in the last component is not followed
/// (as `lstat` would not), which is what code that replaces or removes that
/// component needs. Missing components are returned lexically.
///
/// Errors: `ELOOP` after [`MAX_SYMLINK_HOPS`] symlinks, and any `lstat` or
/// `readlink` failure other than a missing component (e.g. `ENOTDIR` when a
/// component below a regular file is asked for).
pub fn resolve_in_root(root: &Path, path: &Path, follow_last: bool) -> io::Result<PathBuf> {
    match walk(root, path, follow_last, Climb::Clamp) {
        Ok(resolved) => Ok(resolved),
        Err(WalkError::Io(err)) => Err(err),
        Err(WalkError::Climb { .. }) => unreachable!("clamping walks never report a climb"),
    }
}

/// What a `..` that would go above the root does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Climb {
    /// Stay at the root, as the kernel does for `/..`.
    Clamp,
    /// Fail with [`WalkError::Climb`]: used for layer entries, where such a
    /// `..` means the layer tries to write outside the rootfs.
    Refuse,
}

/// Why a walk failed.
#[derive(Debug)]
pub(crate) enum WalkError {
    Io(io::Error),
    /// A `..` would have gone above the root. `symlink` is the in-root path
    /// (e.g. `/evil`) of the symlink whose target contained it, with that
    /// target; `None` when the `..` came from the walked path itself.
    Climb {
        symlink: Option<(PathBuf, PathBuf)>,
    },
}

impl From<io::Error> for WalkError {
    fn from(err: io::Error) -> Self {
        WalkError::Io(err)
    }
}

/// One component still to walk, and the symlink (index into `links`) whose
/// target it came from.
struct Pending {
    name: PendingName,
    from_link: Option<usize>,
}

enum PendingName {
    Parent,
    Normal(OsString),
}

/// The walk behind [`resolve_in_root`], with a choice of what `..` above the
/// root does.
pub(crate) fn walk(
    root: &Path,
    path: &Path,
    follow_last: bool,
    climb: Climb,
) -> Result<PathBuf, WalkError> {
    // In-root components resolved so far: each is a directory or missing,
    // never a symlink, so `root.join(resolved...)` follows nothing.
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<Pending> = components(path, None).collect();
    // Symlinks followed: (in-root path, target), for error messages.
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();

    while let Some(step) = pending.pop_front() {
        let name = match step.name {
            PendingName::Parent => {
                if resolved.pop().is_none() && climb == Climb::Refuse {
                    let symlink = step.from_link.map(|i| links[i].clone());
                    return Err(WalkError::Climb { symlink });
                }
                continue;
            }
            PendingName::Normal(name) => name,
        };
        let is_last = pending.is_empty();
        if is_last && !follow_last {
            resolved.push(name);
            break;
        }
        let host_path = join(root, &resolved).join(&name);
        let metadata = match std::fs::symlink_metadata(&host_path) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                resolved.push(name);
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        if !metadata.file_type().is_symlink() {
            resolved.push(name);
            continue;
        }
        if links.len() as u32 >= MAX_SYMLINK_HOPS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP).into());
        }
        let target = std::fs::read_link(&host_path)?;
        let mut link_path = PathBuf::from("/");
        link_path.extend(&resolved);
        link_path.push(&name);
        links.push((link_path, target.clone()));
        if target.is_absolute() {
            resolved.clear();
        }
        let spliced: Vec<Pending> = components(&target, Some(links.len() - 1)).collect();
        for step in spliced.into_iter().rev() {
            pending.push_front(step);
        }
    }
    Ok(join(root, &resolved))
}

fn components(path: &Path, from_link: Option<usize>) -> impl Iterator<Item = Pending> + '_ {
    path.components().filter_map(move |component| {
        let name = match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => return None,
            Component::ParentDir => PendingName::Parent,
            Component::Normal(name) => PendingName::Normal(name.to_os_string()),
        };
        Some(Pending { name, from_link })
    })
}

fn join(root: &Path, resolved: &[OsString]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(resolved);
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A rootfs with:
    /// `usr/lib/`, `etc/passwd`, `lib -> /usr/lib`, `rel -> usr/lib`,
    /// `up -> ../../../../etc`, `usr/lib/self -> ../lib`, `loop1 <-> loop2`,
    /// `self -> self`, `bin -> usr/bin` (missing target).
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root").unwrap();
        symlink("/usr/lib", root.join("lib")).unwrap();
        symlink("usr/lib", root.join("rel")).unwrap();
        symlink("../../../../etc", root.join("up")).unwrap();
        symlink("../lib", root.join("usr/lib/self")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("self", root.join("self")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        dir
    }

    #[test]
    fn paths_resolve_inside_the_root_like_a_chroot_would() {
        let dir = tree();
        let root = dir.path();
        // (path, follow_last, expected path relative to root)
        let table: &[(&str, bool, &str)] = &[
            ("", true, ""),
            ("/", true, ""),
            ("etc/passwd", true, "etc/passwd"),
            ("/etc/./passwd", true, "etc/passwd"),
            ("..", true, ""),
            ("../../etc/passwd", true, "etc/passwd"),
            ("usr/../../../etc", true, "etc"),
            ("lib/x", true, "usr/lib/x"),
            ("lib", true, "usr/lib"),
            ("lib", false, "lib"),
            ("rel/x", true, "usr/lib/x"),
            ("up/passwd", true, "etc/passwd"),
            ("up", false, "up"),
            ("lib/self/self/x", true, "usr/lib/x"),
            ("lib/..", true, "usr"),
            ("missing/a/../b", true, "missing/b"),
            ("bin/sh", true, "usr/bin/sh"),
            ("bin", false, "bin"),
            ("lib/../../..", false, ""),
        ];
        for (path, follow_last, expected) in table {
            let got = resolve_in_root(root, Path::new(path), *follow_last)
                .unwrap_or_else(|err| panic!("{path:?}: {err}"));
            assert_eq!(
                got,
                root.join(expected),
                "{path:?} follow_last={follow_last}"
            );
        }
    }

    #[test]
    fn symlink_loops_fail_with_eloop() {
        let dir = tree();
        for path in ["loop1", "loop2/x", "self", "self/x"] {
            let err = resolve_in_root(dir.path(), Path::new(path), true).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{path}");
        }
        // Not following the last component does not read the loop at all.
        let got = resolve_in_root(dir.path(), Path::new("loop1"), false).unwrap();
        assert_eq!(got, dir.path().join("loop1"));
    }

    #[test]
    fn forty_hops_are_followed_and_forty_one_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("end")).unwrap();
        // l0 -> l1 -> ... -> l39 -> end: 40 symlinks.
        for i in 0..40 {
            let target = if i == 39 {
                "end".to_string()
            } else {
                format!("l{}", i + 1)
            };
            symlink(target, root.join(format!("l{i}"))).unwrap();
        }
        assert_eq!(
            resolve_in_root(root, Path::new("l0"), true).unwrap(),
            root.join("end")
        );
        symlink("l0", root.join("extra")).unwrap();
        let err = resolve_in_root(root, Path::new("extra"), true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn a_component_below_a_regular_file_is_an_error() {
        let dir = tree();
        let err = resolve_in_root(dir.path(), Path::new("etc/passwd/x/y"), true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn refusing_walks_name_the_symlink_that_climbs_above_the_root() {
        let dir = tree();
        let root = dir.path();
        match walk(root, Path::new("up/passwd"), true, Climb::Refuse) {
            Err(WalkError::Climb {
                symlink: Some((link, target)),
            }) => {
                assert_eq!(link, Path::new("/up"));
                assert_eq!(target, Path::new("../../../../etc"));
            }
            other => panic!("expected a climb through /up, got {other:?}"),
        }
        // Absolute targets and `..` that stay inside are not climbs.
        let got = walk(root, Path::new("lib/self/x"), true, Climb::Refuse).unwrap();
        assert_eq!(got, root.join("usr/lib/x"));
        assert!(matches!(
            walk(root, Path::new("../etc"), true, Climb::Refuse),
            Err(WalkError::Climb { symlink: None })
        ));
    }
}
