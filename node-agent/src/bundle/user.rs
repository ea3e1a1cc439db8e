//! The numeric user a container runs as: `runAsUser`/`runAsGroup`, or the
//! image's `User` resolved against the rootfs's `/etc/passwd` and `/etc/group`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use flotilla_shared::wire::{PodSecurity, SecurityContext};

use super::BundleError;

/// Files in the image are untrusted and small; anything bigger is refused.
const MAX_ETC_FILE: u64 = 4 << 20;

/// Numeric ids for `process.user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first, then `/etc/group` membership, the pod's
    /// supplemental groups and its fsGroup, without duplicates.
    pub additional_gids: Vec<u32>,
}

/// One `/etc/passwd` entry.
struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

/// One `/etc/group` entry.
struct Group<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = Passwd<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && !line.starts_with('#')).then_some(())?;
        Some(Passwd {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = Group<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && !line.starts_with('#')).then_some(())?;
        Some(Group {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// Reads `<rootfs>/etc/<name>` without following a symlink at `etc` or at
/// the file: an image could point them at the host's files. Absent means
/// `None` (numeric users only).
pub(crate) fn read_etc_file(rootfs: &Path, name: &str) -> Result<Option<String>, BundleError> {
    let etc = rootfs.join("etc");
    let refuse = |path: &Path, reason: &'static str| BundleError::EtcFile {
        path: path.to_owned(),
        reason,
    };
    match fs::symlink_metadata(&etc) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(refuse(&etc, "is a symlink")),
        Ok(meta) if !meta.is_dir() => return Err(refuse(&etc, "is not a directory")),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(BundleError::ReadEtc { path: etc, source }),
    }
    let path = etc.join(name);
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse(&path, "is a symlink"));
        }
        Err(source) => return Err(BundleError::ReadEtc { path, source }),
    };
    let meta = file.metadata().map_err(|source| BundleError::ReadEtc {
        path: path.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(refuse(&path, "is not a regular file"));
    }
    if meta.len() > MAX_ETC_FILE {
        return Err(refuse(&path, "is larger than 4 MiB"));
    }
    let mut text = String::new();
    file.take(MAX_ETC_FILE)
        .read_to_string(&mut text)
        .map_err(|source| BundleError::ReadEtc { path, source })?;
    Ok(Some(text))
}

/// Resolves who the container runs as. `image_user` is the image config's
/// `User`: empty, `name`, `uid`, `name:group` or `uid:gid`.
pub(crate) fn resolve(
    rootfs: &Path,
    image_user: &str,
    security: &SecurityContext,
    pod: &PodSecurity,
) -> Result<ResolvedUser, BundleError> {
    let passwd = read_etc_file(rootfs, "passwd")?.unwrap_or_default();
    let group = read_etc_file(rootfs, "group")?.unwrap_or_default();
    let by_uid = |uid: u32| passwd_entries(&passwd).find(|p| p.uid == uid);

    let (user_part, group_part) = match security.run_as_user {
        Some(_) => ("", None),
        None => match image_user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (image_user, None),
        },
    };
    let (uid, mut gid, name) = if let Some(uid) = security.run_as_user {
        let entry = by_uid(uid);
        (
            uid,
            entry.as_ref().map_or(0, |p| p.gid),
            entry.map(|p| p.name),
        )
    } else if user_part.is_empty() {
        (0, 0, by_uid(0).map(|p| p.name))
    } else if let Ok(uid) = user_part.parse::<u32>() {
        let entry = by_uid(uid);
        (
            uid,
            entry.as_ref().map_or(0, |p| p.gid),
            entry.map(|p| p.name),
        )
    } else {
        let entry = passwd_entries(&passwd)
            .find(|p| p.name == user_part)
            .ok_or_else(|| BundleError::UnknownUser {
                user: user_part.to_owned(),
            })?;
        (entry.uid, entry.gid, Some(entry.name))
    };
    match group_part {
        None | Some("") => {}
        Some(g) => {
            gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group_entries(&group)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| BundleError::UnknownGroup {
                        group: g.to_owned(),
                    })?,
            }
        }
    }
    if let Some(g) = security.run_as_group {
        gid = g;
    }

    let mut additional = vec![gid];
    if let Some(name) = name {
        additional.extend(
            group_entries(&group)
                .filter(|g| g.members.contains(&name))
                .map(|g| g.gid),
        );
    }
    additional.extend(&pod.supplemental_groups);
    additional.extend(pod.fs_group);
    let mut seen = std::collections::BTreeSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # a comment\n\
                          app:x:1000:1000::/home/app:/bin/sh\n\
                          web:x:33:33::/var/www:/bin/sh\n\
                          broken:x:notanumber:1\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nweb:x:33:\naudio:x:29:app,web\nvideo:x:44:app\n";

    fn rootfs_with_etc() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    fn resolve_plain(rootfs: &Path, user: &str) -> Result<ResolvedUser, BundleError> {
        resolve(
            rootfs,
            user,
            &SecurityContext::default(),
            &PodSecurity::default(),
        )
    }

    #[test]
    fn image_users_resolve_by_name_number_and_group() {
        let root = rootfs_with_etc();
        let cases: [(&str, u32, u32, &[u32]); 6] = [
            ("", 0, 0, &[0]),
            ("app", 1000, 1000, &[1000, 29, 44]),
            ("1000", 1000, 1000, &[1000, 29, 44]),
            ("web:audio", 33, 29, &[29]),
            ("4242:4343", 4242, 4343, &[4343]),
            ("4242", 4242, 0, &[0]),
        ];
        for (user, uid, gid, gids) in cases {
            let got = resolve_plain(root.path(), user).unwrap();
            assert_eq!(
                (got.uid, got.gid, got.additional_gids.as_slice()),
                (uid, gid, gids),
                "{user:?}"
            );
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        let root = rootfs_with_etc();
        assert!(matches!(
            resolve_plain(root.path(), "nobody"),
            Err(BundleError::UnknownUser { user }) if user == "nobody"
        ));
        assert!(matches!(
            resolve_plain(root.path(), "app:wheel"),
            Err(BundleError::UnknownGroup { group }) if group == "wheel"
        ));
    }

    #[test]
    fn without_etc_only_numeric_users_work() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(resolve_plain(root.path(), "5:6").unwrap().gid, 6);
        assert!(matches!(
            resolve_plain(root.path(), "app"),
            Err(BundleError::UnknownUser { .. })
        ));
    }

    #[test]
    fn run_as_user_and_group_override_the_image_and_groups_are_added() {
        let root = rootfs_with_etc();
        let security = SecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            ..Default::default()
        };
        let pod = PodSecurity {
            fs_group: Some(2000),
            supplemental_groups: vec![44, 5000],
        };
        let got = resolve(root.path(), "web", &security, &pod).unwrap();
        assert_eq!(got.uid, 1000);
        assert_eq!(got.gid, 3000);
        assert_eq!(got.additional_gids, [3000, 29, 44, 5000, 2000]);
    }

    #[test]
    fn symlinked_etc_or_passwd_is_refused_not_followed() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("etc")).unwrap();
        assert!(matches!(
            resolve_plain(root.path(), "root"),
            Err(BundleError::EtcFile {
                reason: "is a symlink",
                ..
            })
        ));
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("etc/passwd")).unwrap();
        assert!(matches!(
            resolve_plain(root.path(), "root"),
            Err(BundleError::EtcFile {
                reason: "is a symlink",
                ..
            })
        ));
    }

    #[test]
    fn a_fifo_as_passwd_is_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(root.path().join("etc/passwd"))
            .status()
            .unwrap();
        assert!(status.success());
        assert!(matches!(
            resolve_plain(root.path(), "root"),
            Err(BundleError::EtcFile {
                reason: "is not a regular file",
                ..
            })
        ));
    }
}
