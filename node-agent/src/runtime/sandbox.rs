//! A pod's sandbox: the network, IPC and UTS namespaces its containers
//! share, kept alive without a process (no pause container) by bind-mounting
//! them onto files, as `ip netns add` does: `<run_dir>/ns/<pod-uid>/{net,ipc,uts}`.
//! Containers join them by path (`linux.namespaces[].path` in config.json).
//!
//! The namespaces are made on a short-lived thread that unshares them, sets
//! the pod's hostname, sets `lo` up and bind-mounts its own
//! `/proc/thread-self/ns/*`. Making a network namespace takes milliseconds,
//! so one spare sandbox is kept made ahead ([`make_spare`]) and renamed to
//! the next pod's uid (then given its hostname) when it starts.
//! `<run_dir>/ns` is first made a private mount
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
/// exists already. Takes the spare sandbox if there is one (see
/// [`make_spare`]). On failure nothing is left behind.
pub fn create(run_dir: &Path, pod_uid: &str, hostname: &str) -> Result<SandboxPaths, SandboxError> {
    validate_uid(pod_uid)?;
    validate_hostname(hostname)?;
    let sandbox = paths(run_dir, pod_uid);
    if exists(run_dir, pod_uid) {
        return Ok(sandbox);
    }
    prepare_root(run_dir)?;
    if take_spare(run_dir, pod_uid, hostname) {
        return Ok(sandbox);
    }
    let dir = ns_root(run_dir).join(pod_uid);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let result = make_namespaces(pod_uid, hostname, &sandbox);
    if let Err(e) = result {
        let _ = remove(run_dir, pod_uid);
        return Err(e);
    }
    Ok(sandbox)
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SandboxError + use<> {
    let path = path.to_owned();
    move |source| SandboxError::Io { path, source }
}

/// The `<run_dir>/ns` roots this process made private mount points: the
/// check reads mountinfo, which grows with every container's mounts, so it
/// is done once per root rather than per pod.
static PREPARED_ROOTS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Makes `<run_dir>/ns` a private mount point, once.
fn prepare_root(run_dir: &Path) -> Result<(), SandboxError> {
    let root = ns_root(run_dir);
    let mut prepared = PREPARED_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
    if prepared.contains(&root) {
        return Ok(());
    }
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    mount::make_private_mount_point(&root).map_err(io_err(&root))?;
    prepared.push(root);
    Ok(())
}

/// The name of the spare sandbox under `<run_dir>/ns` (pod uids have no dots).
const SPARE: &str = ".spare";

/// Makes a spare sandbox, if there is none, for the next [`create`] to take:
/// a network namespace costs milliseconds to make (the largest part of a
/// sandbox), and a pod start should not wait for it. Safe to call
/// concurrently: the spare is made under a name of its own and renamed
/// into place, and the loser of a race removes its own.
pub fn make_spare(run_dir: &Path) -> Result<(), SandboxError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    if exists(run_dir, SPARE) {
        return Ok(());
    }
    prepare_root(run_dir)?;
    let name = format!(
        "{SPARE}-tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let dir = ns_root(run_dir).join(&name);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    if let Err(e) = make_namespaces(&name, "localhost", &paths(run_dir, &name)) {
        let _ = remove(run_dir, &name);
        return Err(e);
    }
    if fs::rename(&dir, ns_root(run_dir).join(SPARE)).is_err() {
        // Another spare got there first (or a broken one is in the way).
        remove(run_dir, &name)?;
        if !exists(run_dir, SPARE) {
            remove(run_dir, SPARE)?;
        }
    }
    Ok(())
}

/// Removes the spare sandbox, if any.
pub fn remove_spare(run_dir: &Path) -> Result<(), SandboxError> {
    remove(run_dir, SPARE)
}

/// Renames the spare sandbox to `pod_uid` and gives it `hostname`; false if
/// there is none or it could not be taken (a new sandbox is made instead).
fn take_spare(run_dir: &Path, pod_uid: &str, hostname: &str) -> bool {
    if !exists(run_dir, SPARE) {
        return false;
    }
    let root = ns_root(run_dir);
    // Atomic: of two pods starting at once, one gets it.
    if fs::rename(root.join(SPARE), root.join(pod_uid)).is_err() {
        return false;
    }
    let uts = paths(run_dir, pod_uid).uts;
    let hostname = hostname.to_owned();
    // setns moves only the calling thread: a short-lived one does it.
    let named = std::thread::Builder::new()
        .name("pod-hostname".into())
        .spawn(move || -> io::Result<()> {
            netns::enter_namespace(&fs::File::open(&uts)?)?;
            netns::set_hostname(&hostname)
        })
        .map_err(|e| e.to_string())
        .and_then(|thread| match thread.join() {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("the hostname thread panicked".to_owned()),
        });
    match named {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%pod_uid, %error, "naming the spare sandbox; making a new one");
            let _ = remove(run_dir, pod_uid);
            false
        }
    }
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

/// Removes the spare sandbox and detaches the private `<run_dir>/ns` mount
/// made by [`create`], once no sandbox is left in it (for shutting down
/// cleanly and for tests); does nothing more while sandboxes remain or if
/// it is not mounted.
pub fn release(run_dir: &Path) -> Result<(), SandboxError> {
    remove_spare(run_dir)?;
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
    PREPARED_ROOTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|r| *r != root);
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

    /// The hostname and whether a loopback connection works, seen from
    /// inside a sandbox.
    fn look_inside(sandbox: &SandboxPaths) -> (String, bool) {
        let ns = fs::File::open(&sandbox.net).expect("open ns");
        let uts = fs::File::open(&sandbox.uts).expect("open uts");
        std::thread::spawn(move || {
            netns::enter_namespace(&ns).expect("setns net");
            netns::enter_namespace(&uts).expect("setns uts");
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind inside");
            let addr = listener.local_addr().expect("addr");
            let connected = std::net::TcpStream::connect(addr).is_ok();
            let hostname = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
            (hostname.trim().to_owned(), connected)
        })
        .join()
        .expect("thread")
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata(path).expect("stat").ino()
    }

    #[test]
    fn a_pod_takes_the_spare_sandbox_with_its_own_hostname_and_a_new_spare_differs() {
        let dir = tempfile::tempdir().expect("tempdir");
        make_spare(dir.path()).expect("spare");
        // Twice, and from two threads at once: still one spare, no leftovers.
        let run = dir.path().to_owned();
        let racer = std::thread::spawn(move || make_spare(&run));
        make_spare(dir.path()).expect("spare again");
        racer.join().expect("thread").expect("racing spare");
        let names = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(dir.join("ns"))
                .expect("ls")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(dir.path()), [SPARE]);
        let spare_net = inode(&paths(dir.path(), SPARE).net);

        let sandbox = create(dir.path(), "pod-1", "web-0").expect("create");
        assert_eq!(
            inode(&sandbox.net),
            spare_net,
            "the spare's namespace was taken"
        );
        assert!(!exists(dir.path(), SPARE));
        assert_eq!(look_inside(&sandbox), ("web-0".to_owned(), true));

        make_spare(dir.path()).expect("a new spare");
        let sandbox2 = create(dir.path(), "pod-2", "web-1").expect("create");
        assert_ne!(inode(&sandbox2.net), inode(&sandbox.net));
        assert_eq!(look_inside(&sandbox2), ("web-1".to_owned(), true));
        // Without a spare a sandbox is made as before.
        let sandbox3 = create(dir.path(), "pod-3", "web-2").expect("create");
        assert_eq!(look_inside(&sandbox3), ("web-2".to_owned(), true));

        make_spare(dir.path()).expect("spare");
        for uid in ["pod-1", "pod-2", "pod-3"] {
            remove(dir.path(), uid).expect("remove");
        }
        release(dir.path()).expect("release takes the spare too");
        assert!(names(dir.path()).is_empty());
        let ns = dir.path().join("ns").canonicalize().expect("ns dir");
        assert!(!mount::is_mount_point(&ns).expect("mountinfo"));
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
        let (hostname, connected) = look_inside(&sandbox);
        assert!(connected, "loopback is up in the sandbox");
        assert_eq!(hostname, "web-0");
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
