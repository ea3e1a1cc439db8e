//! The agent's durable state: the last desired state it accepted and one
//! record per pod, each written atomically (temp file, fsync, rename, fsync
//! of the directory) so that a power cut at any instant leaves either the
//! old or the new version, never a torn one.
//!
//! ```text
//! <state>/desired.bin            postcard DesiredState
//! <state>/pods/<uid>/record.json PodRecord
//! ```

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use flotilla_shared::wire::DesiredState;

use crate::pod::PodRecord;

/// Errors of the state directory; all mean the disk is unusable or full,
/// so retrying later may help.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync,
/// rename over `path`, fsync of the directory. A crash leaves the old file
/// or the new one, never a torn one. The file gets mode `0o666` less the
/// umask, as with [`fs::File::create`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, 0o666, Durability::Synced)
}

/// [`write_atomic`] for a file that must have `mode` (less the umask), such
/// as a secret readable by its owner only.
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace(path, bytes, mode, Durability::Synced)
}

/// Replaces `path` by a temp file and a rename, without fsync: for files on
/// tmpfs that change often, where a reader must never see half a file but
/// durability does not matter.
pub fn write_atomic_volatile(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, 0o666, Durability::Volatile)
}

/// [`write_atomic_volatile`] with `mode`: for files on disk that are
/// written anew before every use (a container's `config.json`, a pod's
/// `/etc/hosts`), where a power loss ends their users too.
pub fn write_atomic_volatile_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace(path, bytes, mode, Durability::Volatile)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// fsync of the file before the rename and of the directory after it.
    Synced,
    Volatile,
}

/// The one implementation behind the `write_atomic*` functions. The temp
/// file is `.<name>.tmp-<pid>-<n>`: unique per process and call, so
/// concurrent writers never share one, and recognisable (`.tmp-`) for the
/// clean-ups after a crash ([`StateDir::open`], the image store's).
fn replace(path: &Path, bytes: &[u8], mode: u32, durability: Durability) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);

    // A bare file name has the empty path as parent; fsync `.` for it.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    tmp_name.push(format!(".tmp-{}-{seq}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        // O_NOFOLLOW: a symlink planted at the temp name is not written through.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if durability == Durability::Synced {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)?;
        if durability == Durability::Synced {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The agent's state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating if needed) the state directory and removes temp files
    /// a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        let pods = root.join("pods");
        fs::create_dir_all(&pods).map_err(|source| StateError::Write {
            path: pods.clone(),
            source,
        })?;
        let state = StateDir { root };
        state.remove_temp_files(&state.root);
        for uid in state.pod_uids()? {
            state.remove_temp_files(&state.pod_dir(&uid));
        }
        Ok(state)
    }

    fn remove_temp_files(&self, dir: &Path) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.contains(".tmp-") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<state>/pods/<uid>`: the pod's record and disk volumes.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }

    fn desired_path(&self) -> PathBuf {
        self.root.join("desired.bin")
    }

    /// The last desired state accepted, if any.
    pub fn load_desired(&self) -> Result<Option<DesiredState>, StateError> {
        load(&self.desired_path(), |bytes| {
            postcard::from_bytes(bytes).map_err(|e| e.to_string())
        })
    }

    /// Persists a desired state before the agent acts on it.
    pub fn store_desired(&self, desired: &DesiredState) -> Result<(), StateError> {
        store(&self.desired_path(), || {
            postcard::to_allocvec(desired).map_err(|e| e.to_string())
        })
    }

    /// The uids of every pod with a directory.
    pub fn pod_uids(&self) -> Result<Vec<String>, StateError> {
        let dir = self.root.join("pods");
        let entries = fs::read_dir(&dir).map_err(|source| StateError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut uids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        uids.sort();
        Ok(uids)
    }

    /// A pod's record, if it has one.
    pub fn load_record(&self, uid: &str) -> Result<Option<PodRecord>, StateError> {
        load(&self.pod_dir(uid).join("record.json"), |bytes| {
            serde_json::from_slice(bytes).map_err(|e| e.to_string())
        })
    }

    /// Whether the pod has a record (something of it ran).
    pub fn has_record(&self, uid: &str) -> bool {
        self.pod_dir(uid).join("record.json").exists()
    }

    /// Writes a pod's record.
    pub fn store_record(&self, record: &PodRecord) -> Result<(), StateError> {
        let path = self.create_pod_dir(&record.uid)?.join("record.json");
        store(&path, || {
            serde_json::to_vec(record).map_err(|e| e.to_string())
        })
    }

    /// The spec of a pod that left the desired state, kept beside its record
    /// as it left (so that it is still stopped properly after a crash).
    pub fn load_pod(&self, uid: &str) -> Result<Option<flotilla_shared::wire::Pod>, StateError> {
        load(&self.pod_dir(uid).join("pod.bin"), |bytes| {
            postcard::from_bytes(bytes).map_err(|e| e.to_string())
        })
    }

    /// Keeps a pod's spec beside its record.
    pub fn store_pod(&self, pod: &flotilla_shared::wire::Pod) -> Result<(), StateError> {
        let path = self.create_pod_dir(&pod.uid)?.join("pod.bin");
        store(&path, || {
            postcard::to_allocvec(pod).map_err(|e| e.to_string())
        })
    }

    /// The pod's directory, created if needed; a new one is made durable
    /// (fsync of `pods/`) before anything is written into it.
    fn create_pod_dir(&self, uid: &str) -> Result<PathBuf, StateError> {
        let dir = self.pod_dir(uid);
        if dir.is_dir() {
            return Ok(dir);
        }
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Write { path, source }
        };
        fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        let pods = self.root.join("pods");
        fs::File::open(&pods)
            .and_then(|f| f.sync_all())
            .map_err(write_err(&pods))?;
        Ok(dir)
    }

    /// Removes a pod's directory once nothing of the pod is left.
    pub fn remove_pod(&self, uid: &str) -> Result<(), StateError> {
        let dir = self.pod_dir(uid);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Write { path: dir, source }),
        }
    }
}

/// Reads and decodes the file at `path`; `None` if there is none.
fn load<T>(
    path: &Path,
    decode: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| StateError::Corrupt {
            path: path.to_owned(),
            reason,
        })
}

/// Encodes a value and writes it to `path` with [`write_atomic`].
fn store(path: &Path, encode: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<(), StateError> {
    let bytes = encode().map_err(|reason| StateError::Corrupt {
        path: path.to_owned(),
        reason,
    })?;
    write_atomic(path, &bytes).map_err(|source| StateError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_shared::wire::Pod;

    #[test]
    fn desired_state_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.load_desired().unwrap(), None);
        let desired = DesiredState {
            node: "pi-1".into(),
            revision: 42,
            pods: vec![Pod {
                uid: "u1".into(),
                name: "web".into(),
                ..Pod::default()
            }],
            services: vec![],
        };
        state.store_desired(&desired).unwrap();
        assert_eq!(state.load_desired().unwrap(), Some(desired));
    }

    #[test]
    fn a_torn_desired_state_is_reported_corrupt_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        fs::write(dir.path().join("desired.bin"), [0xff, 0xff, 0xff]).unwrap();
        assert!(matches!(
            state.load_desired(),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn records_round_trip_and_leftover_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let record = PodRecord {
            uid: "u1".into(),
            name: "web".into(),
            accepted_at_ms: 7,
            ..PodRecord::default()
        };
        state.store_record(&record).unwrap();
        fs::write(state.pod_dir("u1").join(".record.json.tmp-99"), b"half").unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.pod_uids().unwrap(), ["u1"]);
        assert_eq!(state.load_record("u1").unwrap(), Some(record));
        assert!(!state.pod_dir("u1").join(".record.json.tmp-99").exists());
        state.remove_pod("u1").unwrap();
        assert!(state.pod_uids().unwrap().is_empty());
    }

    #[test]
    fn write_atomic_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"first version, longer").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_atomic_with_mode_sets_the_mode_and_replaces_an_existing_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, b"old").unwrap();
        write_atomic_with_mode(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn concurrent_writers_of_one_path_never_share_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::thread::scope(|scope| {
            for i in 0..8u8 {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, &[i; 4096]).unwrap();
                    }
                });
            }
        });
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|b| *b == bytes[0]), "a torn file");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_atomic_volatile_replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        write_atomic_volatile(&path, b"{\"a\":1}").unwrap();
        write_atomic_volatile(&path, b"{}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_neither_the_file_nor_a_temp() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: a directory stands at the target.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        assert!(write_atomic(&path, b"data").is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["taken"]);
    }
}
