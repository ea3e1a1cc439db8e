//! Namespaces for pod sandboxes, and TCP connections made from inside a
//! pod's network namespace (for probes). The mounts that keep a sandbox's
//! namespaces alive are [`super::mount`]'s.
//!
//! Namespace changes (`unshare`, `setns`) affect only the calling thread, so
//! callers run them on a dedicated thread that ends afterwards.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// `NSFS_MAGIC` from `linux/magic.h`: the filesystem type of namespace files.
const NSFS_MAGIC: u64 = 0x6e73_6673;

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

/// Whether `path` is a namespace file (a bind-mounted `/proc/*/ns/*`).
pub fn is_namespace_file(path: &Path) -> io::Result<bool> {
    Ok(super::mount::filesystem_magic(path)? == NSFS_MAGIC)
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
