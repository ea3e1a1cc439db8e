//! Reading and atomically writing PKI files.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::PkiError;

/// Mode of private key files: readable by the hub's user only.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files: public material.
pub(crate) const CERT_MODE: u32 = 0o644;
/// Mode of the directory that holds keys.
const DIR_MODE: u32 = 0o700;

/// Reads a whole text file; a missing file is [`PkiError::Missing`].
pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| match source.kind() {
        ErrorKind::NotFound => PkiError::Missing {
            path: path.to_owned(),
        },
        ErrorKind::InvalidData => PkiError::Garbled {
            path: path.to_owned(),
            reason: "not UTF-8 text".into(),
        },
        _ => PkiError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

/// Whether `path` exists; an unreadable parent is an error, not "absent".
pub(crate) fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Creates `dir` (and its parents) if needed, owner-only when created.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| PkiError::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Writes `contents` to `path` so that a crash leaves either the old file or
/// the new one: a temporary file beside it with `mode`, fsynced, renamed over
/// `path`, then the directory fsynced so the rename itself is durable.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PkiError::Write { path, source }
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| PkiError::Write {
        path: path.to_owned(),
        source: std::io::Error::new(ErrorKind::InvalidInput, "no file name"),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);

    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(write_err(&tmp))?;
    // A stale temporary file from a crash keeps its old mode: set it anew.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(write_err(&tmp))?;
    file.write_all(contents).map_err(write_err(&tmp))?;
    file.sync_all().map_err(write_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(write_err(path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn atomic_write_replaces_contents_sets_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.key");
        write_atomic(&path, b"old", CERT_MODE).unwrap();
        write_atomic(&path, b"new", KEY_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode_of(&path), KEY_MODE);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.key"]);
    }

    #[test]
    fn atomic_write_fixes_the_mode_of_a_stale_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".x.key.tmp");
        fs::write(&stale, "junk").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o666)).unwrap();
        let path = dir.path().join("x.key");
        write_atomic(&path, b"secret", KEY_MODE).unwrap();
        assert_eq!(mode_of(&path), KEY_MODE);
        assert_eq!(fs::read(&path).unwrap(), b"secret");
    }

    #[test]
    fn reading_a_missing_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.crt");
        let err = read_text(&path).unwrap_err();
        assert!(matches!(&err, PkiError::Missing { path: p } if p == &path));
        assert_eq!(err.to_string(), format!("missing {}", path.display()));
    }

    #[test]
    fn ensure_dir_creates_an_owner_only_directory() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("data/pki");
        ensure_dir(&pki).unwrap();
        assert_eq!(mode_of(&pki), DIR_MODE);
        ensure_dir(&pki).unwrap();
    }
}
