//! File-system calls std does not offer on stable Rust.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Creates a FIFO at `path` with `mode` (before the umask), `mkfifo(3)`.
/// Fails with `EEXIST` if anything exists there; a symlink at `path` is not
/// followed.
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let c_path = super::c_path(path)?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call;
    // mkfifo only reads it.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), mode as libc::mode_t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the extended attribute `name` of an open file, `fsetxattr(2)`.
pub fn fsetxattr(file: &File, name: &str, value: &[u8]) -> io::Result<()> {
    let c_name = super::c_str(name)?;
    // SAFETY: the fd is open for the duration of the call (borrowed from
    // `file`); `c_name` is NUL-terminated and `value` is valid for
    // `value.len()` bytes; fsetxattr only reads them.
    let rc = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The extended attribute `name` of an open file, `fgetxattr(2)`; `None`
/// when the file does not have it.
pub fn fgetxattr(file: &File, name: &str) -> io::Result<Option<Vec<u8>>> {
    let c_name = super::c_str(name)?;
    // Attribute values are at most 64 KiB (XATTR_SIZE_MAX).
    let mut value = vec![0u8; 64 * 1024];
    // SAFETY: the fd is open for the duration of the call; `c_name` is
    // NUL-terminated; `value` is writable for `value.len()` bytes.
    let rc = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            c_name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(err),
        };
    }
    value.truncate(rc as usize);
    Ok(Some(value))
}

/// The process's effective user id, `geteuid(2)`.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn mkfifo_creates_a_fifo_and_refuses_an_existing_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        mkfifo(&path, 0o640).unwrap();
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let err = mkfifo(&path, 0o640).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn user_xattrs_round_trip_and_a_missing_one_is_none() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let file = file.as_file();
        assert_eq!(fgetxattr(file, "user.flotilla.test").unwrap(), None);
        match fsetxattr(file, "user.flotilla.test", b"value") {
            Ok(()) => {}
            // Some file systems (older tmpfs) have no user xattrs.
            Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => return,
            Err(err) => panic!("fsetxattr: {err}"),
        }
        assert_eq!(
            fgetxattr(file, "user.flotilla.test").unwrap().as_deref(),
            Some(&b"value"[..])
        );
    }

    #[test]
    fn effective_uid_matches_the_owner_of_a_new_file() {
        use std::os::unix::fs::MetadataExt;
        let file = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(file.as_file().metadata().unwrap().uid(), effective_uid());
    }
}
