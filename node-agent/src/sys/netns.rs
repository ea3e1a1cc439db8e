//! Namespaces and mounts for pod sandboxes, and TCP connections made from
//! inside a pod's network namespace (for probes).
//!
//! Namespace changes (`unshare`, `setns`) affect only the calling thread, so
//! callers run them on a dedicated thread that ends afterwards.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// `NSFS_MAGIC` from `linux/magic.h`: the filesystem type of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)` for the calling
/// thread: the three namespaces a pod's containers share.
pub fn unshare_pod_namespaces() -> io::Result<()> {
    // SAFETY: unshare takes only flags and changes the calling thread's namespaces.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `sethostname(2)` in the calling thread's UTS namespace.
pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `lo` up in the calling thread's network namespace, as `ip link set
/// lo up` does (SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP).
pub fn bring_up_loopback() -> io::Result<()> {
    // SAFETY: socket takes plain integers and returns a new descriptor or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor owned by nothing else.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming "lo"; SIOCGIFFLAGS writes its flags.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the flags member is the one initialised.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: `req` is a valid ifreq with the name and new flags set.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mount(source: Option<&Path>, target: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let source = source.map(c_path).transpose()?;
    let target = c_path(target)?;
    let none = c"none";
    // SAFETY: every pointer is a valid NUL-terminated string (or null, which
    // mount accepts for the source of a propagation change and for data)
    // that outlives the call.
    let rc = unsafe {
        libc::mount(
            source.as_ref().map_or(none.as_ptr(), |s| s.as_ptr()),
            target.as_ptr(),
            none.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mount --bind source target`.
pub fn bind_mount(source: &Path, target: &Path) -> io::Result<()> {
    mount(Some(source), target, libc::MS_BIND)
}

/// Makes `dir` a mount point of itself (`mount --bind dir dir`) when it is
/// not one yet, then marks it private so that mounts under it are neither
/// propagated to nor received from other mount namespaces.
pub fn make_private_mount_point(dir: &Path) -> io::Result<()> {
    if !is_mount_point(dir)? {
        mount(Some(dir), dir, libc::MS_BIND | libc::MS_REC)?;
    }
    mount(None, dir, libc::MS_PRIVATE | libc::MS_REC)
}

/// `umount2(path, MNT_DETACH)`: detaches the mount now; the kernel frees it
/// when its last user goes. Not mounted (EINVAL) and missing (ENOENT) are Ok.
pub fn unmount_detach(path: &Path) -> io::Result<()> {
    let target = c_path(path)?;
    // SAFETY: `target` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
            _ => Err(err),
        };
    }
    Ok(())
}

/// Whether `path` is a namespace file (a bind-mounted `/proc/*/ns/*`).
pub fn is_namespace_file(path: &Path) -> io::Result<bool> {
    let c = c_path(path)?;
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a valid path string and `stat` writable memory of the size statfs fills.
    if unsafe { libc::statfs(c.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it initialised the struct.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    Ok(stat.f_type as i64 == NSFS_MAGIC)
}

/// Whether `path` is the root of a mount, from `/proc/self/mountinfo`.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let path = path.canonicalize()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| Path::new(&unescape_mountinfo(mount_point)) == path))
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = (bytes[i] == b'\\' && i + 3 < bytes.len())
            .then(|| &bytes[i + 1..i + 4])
            .filter(|digits| digits.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| {
                let value = u16::from(d[0] - b'0') * 64
                    + u16::from(d[1] - b'0') * 8
                    + u16::from(d[2] - b'0');
                u8::try_from(value).ok()
            });
        if let Some(value) = octal {
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `setns(fd, CLONE_NEWNET)`: moves the calling thread into the network
/// namespace of the file `ns`.
pub fn enter_network_namespace(ns: &File) -> io::Result<()> {
    setns(ns, libc::CLONE_NEWNET)
}

/// `setns(fd, 0)`: moves the calling thread into the namespace of the file
/// `ns`, whatever its type (net, ipc and uts are allowed in a thread).
pub fn enter_namespace(ns: &File) -> io::Result<()> {
    setns(ns, 0)
}

fn setns(ns: &File, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: setns takes a descriptor we hold open and a flag.
    if unsafe { libc::setns(ns.as_raw_fd(), nstype) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A TCP connection to `addr` made from inside the network namespace
/// `ns_path` (a pod sandbox's `net` file), for TCP and HTTP probes. A
/// short-lived thread enters the namespace and connects; the socket keeps
/// that namespace after the thread ends.
pub fn connect_in(ns_path: &Path, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let ns = File::open(ns_path)?;
    std::thread::Builder::new()
        .name("netns-connect".into())
        .spawn(move || {
            enter_network_namespace(&ns)?;
            TcpStream::connect_timeout(&addr, timeout)
        })?
        .join()
        .map_err(|_| io::Error::other("the namespace connect thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/trailing\04"), r"/trailing\04");
    }

    #[test]
    fn the_root_is_a_mount_point_and_a_temp_subdir_is_not() {
        assert!(is_mount_point(Path::new("/")).expect("mountinfo"));
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!is_mount_point(dir.path()).expect("mountinfo"));
    }

    #[test]
    fn the_own_network_namespace_file_is_a_namespace_file_and_a_plain_file_is_not() {
        assert!(is_namespace_file(Path::new("/proc/self/ns/net")).expect("statfs"));
        assert!(!is_namespace_file(Path::new("/proc/self/status")).expect("statfs"));
    }

    #[test]
    fn connect_in_the_own_namespace_reaches_a_loopback_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stream = connect_in(Path::new("/proc/self/ns/net"), addr, Duration::from_secs(5))
            .expect("connect");
        assert_eq!(stream.peer_addr().expect("peer"), addr);
    }
}
