//! A pod's sandbox: the network, IPC and UTS namespaces its containers
//! share, kept alive without a process (no pause container) by bind-mounting
//! them onto files, as `ip netns add` does: `<run_dir>/ns/<pod-uid>/{net,ipc,uts}`.
//! Containers join them by path (`linux.namespaces[].path` in config.json).
//!
//! The namespaces are made on a short-lived thread that unshares them, sets
//! the pod's hostname, sets `lo` up and bind-mounts its own
//! `/proc/thread-self/ns/*`. `<run_dir>/ns` is first made a private mount
//! point of itself, so the namespace mounts under it are neither propagated
//! into other mount namespaces (where they would pin the namespaces after
//! [`remove`]) nor receive mounts from them. All of this needs root
//! (CAP_SYS_ADMIN).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::sys::{mount, netns};

/// The namespace files of one pod sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPaths {
    pub net: PathBuf,
    pub ipc: PathBuf,
    pub uts: PathBuf,
}

impl SandboxPaths {
    fn all(&self) -> [(&'static str, &Path); 3] {
        [("net", &self.net), ("ipc", &self.ipc), ("uts", &self.uts)]
    }
}

/// Why a sandbox could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid pod uid {uid:?}: {reason}")]
    InvalidUid { uid: String, reason: &'static str },
    #[error("invalid hostname {hostname:?}: {reason}")]
    InvalidHostname {
        hostname: String,
        reason: &'static str,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{what} for pod {uid}: {source}")]
    Namespace {
        uid: String,
        what: &'static str,
        source: io::Error,
    },
}

impl SandboxError {
    /// Whether trying again may help: not for bad input, perhaps for the rest
    /// (a busy mount, a full table).
    pub fn retry_helps(&self) -> bool {
        !matches!(
            self,
            SandboxError::InvalidUid { .. } | SandboxError::InvalidHostname { .. }
        )
    }
}

fn ns_root(run_dir: &Path) -> PathBuf {
    run_dir.join("ns")
}

/// Where the sandbox of `pod_uid` lives (whether or not it exists).
pub fn paths(run_dir: &Path, pod_uid: &str) -> SandboxPaths {
    let dir = ns_root(run_dir).join(pod_uid);
    SandboxPaths {
        net: dir.join("net"),
        ipc: dir.join("ipc"),
        uts: dir.join("uts"),
    }
}

fn validate_uid(uid: &str) -> Result<(), SandboxError> {
    let reason = if uid.is_empty() {
        Some("it is empty")
    } else if uid.len() > 128 {
        Some("it is longer than 128 bytes")
    } else if uid == "." || uid == ".." {
        Some("it is a relative directory name")
    } else if !uid
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Some("only letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SandboxError::InvalidUid {
            uid: uid.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn validate_hostname(hostname: &str) -> Result<(), SandboxError> {
    let reason = if hostname.is_empty() {
        Some("it is empty")
    } else if hostname.len() > 64 {
        Some("it is longer than 64 bytes")
    } else if !hostname
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
    {
        Some("only letters, digits, '-' and '.' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SandboxError::InvalidHostname {
            hostname: hostname.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether the sandbox of `pod_uid` exists: all three files are mounted
/// namespaces.
pub fn exists(run_dir: &Path, pod_uid: &str) -> bool {
    validate_uid(pod_uid).is_ok()
        && paths(run_dir, pod_uid)
            .all()
            .iter()
            .all(|(_, path)| netns::is_namespace_file(path).unwrap_or(false))
}

/// Creates the sandbox of `pod_uid` with `hostname`; does nothing if it
/// exists already. On failure nothing is left behind.
pub fn create(run_dir: &Path, pod_uid: &str, hostname: &str) -> Result<SandboxPaths, SandboxError> {
    validate_uid(pod_uid)?;
    validate_hostname(hostname)?;
    let sandbox = paths(run_dir, pod_uid);
    if exists(run_dir, pod_uid) {
        return Ok(sandbox);
    }
    let root = ns_root(run_dir);
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| SandboxError::Io { path, source }
    };
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    mount::make_private_mount_point(&root).map_err(io_err(&root))?;
    let dir = root.join(pod_uid);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let result = make_namespaces(pod_uid, hostname, &sandbox);
    if let Err(e) = result {
        let _ = remove(run_dir, pod_uid);
        return Err(e);
    }
    Ok(sandbox)
}

fn make_namespaces(
    pod_uid: &str,
    hostname: &str,
    sandbox: &SandboxPaths,
) -> Result<(), SandboxError> {
    for (_, path) in sandbox.all() {
        fs::File::create(path).map_err(|source| SandboxError::Io {
            path: path.to_owned(),
            source,
        })?;
    }
    let uid = pod_uid.to_owned();
    let hostname = hostname.to_owned();
    let sandbox = sandbox.clone();
    let thread = std::thread::Builder::new()
        .name("pod-sandbox".into())
        .spawn(move || {
            let fail = |what| {
                let uid = uid.clone();
                move |source| SandboxError::Namespace { uid, what, source }
            };
            netns::unshare_pod_namespaces().map_err(fail("unsharing namespaces"))?;
            netns::set_hostname(&hostname).map_err(fail("setting the hostname"))?;
            netns::bring_up_loopback().map_err(fail("setting lo up"))?;
            for (kind, path) in sandbox.all() {
                let source = PathBuf::from("/proc/thread-self/ns").join(kind);
                mount::bind_mount(&source, path).map_err(fail("bind-mounting a namespace"))?;
            }
            Ok(())
        })
        .map_err(|source| SandboxError::Namespace {
            uid: pod_uid.to_owned(),
            what: "starting the namespace thread",
            source,
        })?;
    thread.join().unwrap_or_else(|_| {
        Err(SandboxError::Namespace {
            uid: pod_uid.to_owned(),
            what: "the namespace thread",
            source: io::Error::other("panicked"),
        })
    })
}

/// Removes the sandbox of `pod_uid`: detaches the namespace mounts (the
/// kernel frees each namespace when its last container has left) and
/// deletes the files. Removing a missing sandbox is not an error.
pub fn remove(run_dir: &Path, pod_uid: &str) -> Result<(), SandboxError> {
    validate_uid(pod_uid)?;
    let sandbox = paths(run_dir, pod_uid);
    for (_, path) in sandbox.all() {
        mount::detach_if_mounted(path).map_err(|source| SandboxError::Io {
            path: path.to_owned(),
            source,
        })?;
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(SandboxError::Io {
                    path: path.to_owned(),
                    source: e,
                });
            }
            _ => {}
        }
    }
    let dir = ns_root(run_dir).join(pod_uid);
    match fs::remove_dir(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SandboxError::Io {
            path: dir,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Detaches the private `<run_dir>/ns` mount made by [`create`], once no
/// sandbox is left in it (for shutting down cleanly and for tests); does
/// nothing while sandboxes remain or if it is not mounted.
pub fn release(run_dir: &Path) -> Result<(), SandboxError> {
    let root = ns_root(run_dir);
    let io_err = |source| SandboxError::Io {
        path: root.clone(),
        source,
    };
    match fs::read_dir(&root) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Ok(());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
    }
    mount::detach_if_mounted(&root).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_and_hostnames_are_validated_before_anything_is_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        for uid in ["", "..", "a/b", "a b"] {
            assert!(matches!(
                create(dir.path(), uid, "h"),
                Err(SandboxError::InvalidUid { .. })
            ));
        }
        for host in ["", "a_b", &"h".repeat(65)] {
            assert!(matches!(
                create(dir.path(), "uid", host),
                Err(SandboxError::InvalidHostname { .. })
            ));
        }
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn a_sandbox_has_its_hostname_and_loopback_up_and_is_removed_idempotently() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sandbox = create(dir.path(), "pod-1", "web-0").expect("create");
        assert!(exists(dir.path(), "pod-1"));
        assert_eq!(
            create(dir.path(), "pod-1", "web-0").expect("again"),
            sandbox
        );
        // lo is up: a listener on 127.0.0.1 inside is reachable from inside.
        let ns = fs::File::open(&sandbox.net).expect("open ns");
        let uts = fs::File::open(&sandbox.uts).expect("open uts");
        let (hostname, connected) = std::thread::spawn(move || {
            netns::enter_namespace(&ns).expect("setns net");
            netns::enter_namespace(&uts).expect("setns uts");
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind inside");
            let addr = listener.local_addr().expect("addr");
            let connected = std::net::TcpStream::connect(addr).is_ok();
            let hostname = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
            (hostname, connected)
        })
        .join()
        .expect("thread");
        assert!(connected, "loopback is up in the sandbox");
        assert_eq!(hostname.trim(), "web-0");
        let own = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        assert_ne!(own.trim(), "web-0", "the host keeps its hostname");
        remove(dir.path(), "pod-1").expect("remove");
        assert!(!exists(dir.path(), "pod-1"));
        remove(dir.path(), "pod-1").expect("remove twice");
        release(dir.path()).expect("release");
        let ns = dir.path().join("ns").canonicalize().expect("ns dir");
        assert!(!mount::is_mount_point(&ns).expect("mountinfo"));
    }
}
