//! `syncfs(2)`: makes everything written to one filesystem durable, which
//! is how a freshly unpacked rootfs is flushed before it is renamed into place.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Flushes the filesystem that holds `path` to disk.
pub fn syncfs(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: `file` is an open descriptor that lives until the end of this
    // function; syncfs only reads the descriptor.
    let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncfs_flushes_a_directory_and_reports_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        syncfs(dir.path()).unwrap();
        assert!(syncfs(&dir.path().join("missing")).is_err());
    }
}
