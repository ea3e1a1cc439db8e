//! The agent's only door to raw system calls. Every `unsafe` block in the
//! workspace lives here, each with a `// SAFETY:` comment; safe wrappers
//! (std) are preferred where they exist.
#![allow(unsafe_code)]

pub mod fs;
pub mod netns;
pub mod process;
pub mod syncfs;

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub mod mount;

/// `path` as a C string for a system call; a NUL byte in it is refused
/// before the call.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `s` as a C string for a system call; a NUL byte in it is refused.
fn c_str(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

/// Space on the filesystem holding a path, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilesystemSpace {
    pub total_bytes: u64,
    /// What an unprivileged writer may still use (`f_bavail`).
    pub available_bytes: u64,
}

/// `statvfs(2)` on `path`: what the heartbeat reports as disk available, and
/// what the image store's disk budget is checked against.
// The field types are c_ulong or u64 depending on the target: the casts are
// needed on 32-bit ARM and are no-ops on 64-bit.
#[allow(clippy::unnecessary_cast)]
pub fn filesystem_space(path: &Path) -> io::Result<FilesystemSpace> {
    let c_path = c_path(path)?;
    let mut stat = MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the
    // call, and `stat` points to writable memory of the size statvfs fills.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the whole struct.
    let stat = unsafe { stat.assume_init() };
    let block = (stat.f_frsize as u64).max(1);
    Ok(FilesystemSpace {
        total_bytes: (stat.f_blocks as u64).saturating_mul(block),
        available_bytes: (stat.f_bavail as u64).saturating_mul(block),
    })
}

/// Uptime and load, from `sysinfo(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemLoad {
    pub uptime_seconds: u64,
    /// The one-minute load average times 100 (the heartbeat's `load_centi`).
    pub load_1m_centi: u32,
}

#[allow(clippy::unnecessary_cast)] // c_ulong is 32 bits on armv7
pub fn system_load() -> io::Result<SystemLoad> {
    let mut info = MaybeUninit::<libc::sysinfo>::uninit();
    // SAFETY: `info` points to writable memory of the size sysinfo fills.
    let rc = unsafe { libc::sysinfo(info.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sysinfo returned 0, so it initialised the whole struct.
    let info = unsafe { info.assume_init() };
    // Loads are fixed point with 16 fractional bits (SI_LOAD_SHIFT).
    let load_centi = (info.loads[0] as u64).saturating_mul(100) >> 16;
    Ok(SystemLoad {
        uptime_seconds: u64::try_from(info.uptime).unwrap_or(0),
        load_1m_centi: u32::try_from(load_centi).unwrap_or(u32::MAX),
    })
}

/// The device's memory in bytes, from `sysinfo(2)`.
#[allow(clippy::unnecessary_cast)] // c_ulong is 32 bits on armv7
pub fn memory_total_bytes() -> io::Result<u64> {
    let mut info = MaybeUninit::<libc::sysinfo>::uninit();
    // SAFETY: `info` points to writable memory of the size sysinfo fills.
    let rc = unsafe { libc::sysinfo(info.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sysinfo returned 0, so it initialised the whole struct.
    let info = unsafe { info.assume_init() };
    Ok((info.totalram as u64).saturating_mul(u64::from(info.mem_unit.max(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_space_of_the_temp_dir_is_plausible() {
        let space = filesystem_space(&std::env::temp_dir()).expect("statvfs");
        assert!(space.total_bytes > 0);
        assert!(space.available_bytes <= space.total_bytes);
    }

    #[test]
    fn filesystem_space_of_a_missing_path_is_an_error() {
        let err = filesystem_space(Path::new("/nonexistent/flotilla/path")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_path_with_nul_is_refused_before_the_call() {
        let err = filesystem_space(Path::new("a\0b")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_system_has_been_up_for_a_while() {
        let load = system_load().expect("sysinfo");
        assert!(load.uptime_seconds > 0);
    }
}
