//! The agent's only door to raw system calls. Every `unsafe` block in the
//! workspace lives here, each with a `// SAFETY:` comment; safe wrappers
//! (nix, std) are preferred where they exist.
#![allow(unsafe_code)]

use std::io;

/// Makes this process the child subreaper (`PR_SET_CHILD_SUBREAPER`), so
/// container processes whose runtime parent exits are re-parented to the
/// agent, which reaps them and learns their exit status.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and touches no
    // memory of ours; the remaining arguments are ignored by the kernel.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether this process is currently a child subreaper.
pub fn is_child_subreaper() -> io::Result<bool> {
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one c_int through the pointer,
    // which points at `flag`, alive and writable for the whole call.
    let rc = unsafe {
        libc::prctl(
            libc::PR_GET_CHILD_SUBREAPER,
            &mut flag as *mut libc::c_int,
            0,
            0,
            0,
        )
    };
    if rc == 0 {
        Ok(flag != 0)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subreaper_flag_is_set_and_read_back() {
        set_child_subreaper().expect("prctl(PR_SET_CHILD_SUBREAPER)");
        assert!(is_child_subreaper().expect("prctl(PR_GET_CHILD_SUBREAPER)"));
    }
}
