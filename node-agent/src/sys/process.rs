//! Process control for the container shim: session, subreaper, reaping,
//! pidfds, poll and signals.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// How a reaped child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl WaitStatus {
    fn from_raw(status: libc::c_int) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(WaitStatus::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(WaitStatus::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// The shell's exit code: the code itself, or 128 plus the signal.
    pub fn code(self) -> i32 {
        match self {
            WaitStatus::Exited(code) => code,
            WaitStatus::Signaled(signal) => 128 + signal,
        }
    }
}

/// What one non-blocking `waitpid(-1)` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// This child ended and is now reaped.
    Child { pid: u32, status: WaitStatus },
    /// Children exist but none has ended.
    NoneReady,
    /// The process has no children left.
    NoChildren,
}

/// `setsid(2)`: a new session and process group led by the caller, so that
/// signals sent to the parent's terminal or group do not reach it.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments and only changes the caller's session.
    if unsafe { libc::setsid() } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants are reparented
/// to the caller instead of init, so it can reap them and read their status.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER reads only the integer arguments
    // (passed at full width, as the variadic prctl expects).
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `waitpid(-1, WNOHANG)`: reaps any one ended child. Only for a process
/// whose children are all its own (the shim), never inside tokio, which
/// reaps its children by pid.
pub fn reap_any() -> io::Result<Reaped> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid, writable c_int for the whole call.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            match WaitStatus::from_raw(status) {
                Some(status) => {
                    return Ok(Reaped::Child {
                        pid: pid as u32,
                        status,
                    });
                }
                // Stopped or continued: not an end, look again.
                None => continue,
            }
        }
        if pid == 0 {
            return Ok(Reaped::NoneReady);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ECHILD) => return Ok(Reaped::NoChildren),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// `pidfd_open(2)` (Linux 5.3+): a descriptor that polls readable once the
/// process has ended.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `poll(2)` for input: which of `fds` are readable or hung up, waiting at
/// most `timeout_ms` (-1: forever). EINTR counts as "nothing ready".
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pollfds` is a valid array of `pollfds.len()` entries that the
    // kernel may write to, and every descriptor is borrowed for the call.
    let rc = unsafe {
        libc::poll(
            pollfds.as_mut_ptr(),
            pollfds.len() as libc::nfds_t,
            timeout_ms,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINTR) {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err);
    }
    Ok(pollfds.iter().map(|p| p.revents != 0).collect())
}

/// `dup2(fd, target)`: descriptor `target` then refers to what `fd` does
/// (as a redirection: the old `target` is closed).
pub fn dup_onto(fd: BorrowedFd<'_>, target: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: dup2 only changes the descriptor table; `fd` is borrowed and
    // open, and replacing `target` is what the caller asks for.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `O_NONBLOCK` on a descriptor.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL only reads the flags of a descriptor we borrow.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL with the old flags plus O_NONBLOCK on the same descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `kill(2)`: sends `signal` to process `pid`.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill takes plain integers; a positive pid names one process.
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `kill(-pgid, signal)`: sends `signal` to every process in a group.
pub fn kill_group(pgid: u32, signal: i32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "group id out of range"))?;
    // SAFETY: kill takes plain integers; a negative pid names a process group.
    if unsafe { libc::kill(-pgid, signal) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits, without a thread, until process `pid` has exited (its pidfd turns
/// readable). Needs Linux 5.3; an error means the caller must poll instead.
pub async fn exited(pid: u32) -> io::Result<()> {
    let pidfd = pidfd_open(pid)?;
    // SAFETY: the AsyncFd takes ownership of `pidfd`, a valid descriptor
    // that nothing else holds, closes or replaces while it is registered.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)?;
    let _ready = fd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_death_reads_as_128_plus_the_signal() {
        assert_eq!(WaitStatus::Signaled(15).code(), 143);
        assert_eq!(WaitStatus::Exited(3).code(), 3);
    }

    #[test]
    fn poll_sees_a_pipe_with_data_and_not_an_empty_one() {
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        let fd = std::os::fd::AsFd::as_fd(&reader);
        assert_eq!(poll_readable(&[fd], 0).expect("poll"), vec![false]);
        std::io::Write::write_all(&mut writer, b"x").expect("write");
        assert_eq!(poll_readable(&[fd], 0).expect("poll"), vec![true]);
    }

    #[test]
    fn a_pidfd_becomes_readable_when_the_process_ends() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 0"])
            .spawn()
            .expect("spawn");
        let pidfd = pidfd_open(child.id()).expect("pidfd_open");
        let fd = std::os::fd::AsFd::as_fd(&pidfd);
        assert_eq!(poll_readable(&[fd], 10_000).expect("poll"), vec![true]);
        child.wait().expect("wait");
    }

    #[test]
    fn kill_refuses_pid_zero_and_group_one() {
        assert_eq!(kill(0, 0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            kill_group(1, 0).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
