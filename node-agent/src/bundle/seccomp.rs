//! Seccomp profiles: the embedded `RuntimeDefault` allow list and
//! `Localhost` profiles loaded from the agent's seccomp directory.
//!
//! `RuntimeDefault` follows the default profile of Docker and containerd
//! (Apache-2.0): everything not listed fails with `EPERM`; system calls
//! that need a capability are allowed only when the container has it.

use std::fs;
use std::io::Read;
use std::path::{Component, Path};

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall,
};

use super::BundleError;

/// Largest `Localhost` profile accepted.
const MAX_PROFILE: u64 = 1 << 20;

/// `EPERM`: what a refused system call returns.
const EPERM: u32 = 1;
/// `ENOSYS` for `clone3`, so that libc falls back to `clone`, whose flags
/// the filter can inspect.
const ENOSYS: u32 = 38;
/// `AF_VSOCK`: the socket family the default profile refuses.
const AF_VSOCK: u64 = 40;
/// The namespace flags of `clone` (`CLONE_NEWNS | CLONE_NEWUTS | …`).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

// Provenance: the system call names in ALLOWED, BY_CAPABILITY and
// `arch_specific` below, and the argument rules for `socket`, `personality`
// and `clone` in `runtime_default`, were transcribed by hand (regrouped and
// reformatted) from the default seccomp profile of the Moby project,
// https://github.com/moby/moby, `profiles/seccomp/default.json` (generated
// from `default_linux.go`), licensed under the Apache License 2.0 like
// Flotilla. Compare with that profile when updating these lists.

/// Allowed for every container: ordinary process, file, memory, signal,
/// time, socket and IPC calls, including the 32-bit and `time64` variants.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir",
    "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32",
    "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
    "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
    "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv",
    "preadv2", "prlimit64", "process_mrelease", "process_vm_readv", "process_vm_writev",
    "pselect6", "pselect6_time64", "ptrace", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
    "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat",
    "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice",
    "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
    "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork",
    "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
];

/// Allowed only with a capability (the capability is what guards them).
const BY_CAPABILITY: &[(Capability, &[&str])] = &[
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "init_module", "finit_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (
        Capability::SysTime,
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// The seccomp architectures and extra system calls for a Rust target
/// architecture (`std::env::consts::ARCH`).
fn arch_specific(arch: &str) -> (Vec<Arch>, &'static [&'static str]) {
    const ARM: &[&str] = &[
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ];
    match arch {
        "x86_64" => (
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
            &["arch_prctl", "modify_ldt"],
        ),
        "aarch64" => (vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm], ARM),
        "arm" => (vec![Arch::ScmpArchArm], ARM),
        _ => (vec![Arch::ScmpArchNative], &[]),
    }
}

fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|s| (*s).to_owned()).collect());
    rule.set_action(action);
    rule
}

fn arg(index: usize, value: u64, op: LinuxSeccompOperator) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op)
        .build()
        .expect("every field of a seccomp argument is set")
}

fn with_args(names: &[&str], args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut rule = rule(names, LinuxSeccompAction::ScmpActAllow);
    rule.set_args(Some(args));
    rule
}

/// The `RuntimeDefault` profile for a container with capabilities `caps`
/// (its bounding set) on the Rust target architecture `arch`.
pub fn runtime_default(arch: &str, caps: &Capabilities) -> LinuxSeccomp {
    use LinuxSeccompAction::{ScmpActAllow, ScmpActErrno};
    use LinuxSeccompOperator::{ScmpCmpEq, ScmpCmpMaskedEq, ScmpCmpNe};
    let (architectures, arch_calls) = arch_specific(arch);
    let mut rules = vec![rule(ALLOWED, ScmpActAllow)];
    if !arch_calls.is_empty() {
        rules.push(rule(arch_calls, ScmpActAllow));
    }
    rules.push(with_args(&["socket"], vec![arg(0, AF_VSOCK, ScmpCmpNe)]));
    // personality(2) only for the queries and the Linux/32-bit personas.
    for persona in [0, 8, 0x2_0000, 0x2_0008, 0xffff_ffff] {
        rules.push(with_args(
            &["personality"],
            vec![arg(0, persona, ScmpCmpEq)],
        ));
    }
    if !caps.contains(&Capability::SysAdmin) {
        // clone without namespace flags; value_two 0: (flags & mask) == 0.
        rules.push(with_args(
            &["clone"],
            vec![arg(0, CLONE_NAMESPACE_FLAGS, ScmpCmpMaskedEq)],
        ));
        let mut clone3 = rule(&["clone3"], ScmpActErrno);
        clone3.set_errno_ret(Some(ENOSYS));
        rules.push(clone3);
    }
    for (cap, names) in BY_CAPABILITY {
        if caps.contains(cap) {
            rules.push(rule(names, ScmpActAllow));
        }
    }
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(ScmpActErrno);
    profile.set_default_errno_ret(Some(EPERM));
    profile.set_architectures(Some(architectures));
    profile.set_syscalls(Some(rules));
    profile
}

/// Loads the `Localhost` profile `name` from `dir`. The name must be a
/// relative path without `..`, so a pod spec cannot read outside `dir`.
pub fn localhost(dir: &Path, name: &str) -> Result<LinuxSeccomp, BundleError> {
    let invalid = |reason| BundleError::SeccompProfileName {
        name: name.to_owned(),
        reason,
    };
    let rel = Path::new(name);
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid("must be a relative path without `.` or `..`"));
    }
    let path = dir.join(rel);
    let read_err = |source| BundleError::SeccompProfileRead {
        path: path.clone(),
        source,
    };
    let file = fs::File::open(&path).map_err(read_err)?;
    if !file.metadata().map_err(read_err)?.is_file() {
        return Err(BundleError::SeccompProfileInvalid {
            path: path.clone(),
            detail: "not a regular file".into(),
        });
    }
    let mut text = Vec::new();
    file.take(MAX_PROFILE + 1)
        .read_to_end(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_PROFILE {
        return Err(BundleError::SeccompProfileInvalid {
            path,
            detail: "larger than 1 MiB".into(),
        });
    }
    serde_json::from_slice(&text).map_err(|e| BundleError::SeccompProfileInvalid {
        path,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_names(profile: &LinuxSeccomp) -> Vec<String> {
        profile
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn the_default_profile_refuses_with_eperm_and_allows_ordinary_calls() {
        let caps: Capabilities = [Capability::Chown, Capability::SysChroot]
            .into_iter()
            .collect();
        let profile = runtime_default("aarch64", &caps);
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(EPERM));
        assert_eq!(
            profile.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        let names = allowed_names(&profile);
        for expected in ["read", "openat", "execve", "futex", "chroot", "set_tls"] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
        for refused in [
            "mount",
            "unshare",
            "setns",
            "keyctl",
            "bpf",
            "reboot",
            "kexec_load",
            "arch_prctl",
        ] {
            assert!(!names.iter().any(|n| n == refused), "{refused} allowed");
        }
    }

    #[test]
    fn clone_is_limited_to_no_new_namespaces_unless_sys_admin() {
        let plain = runtime_default("x86_64", &Capabilities::new());
        let rules = plain.syscalls().as_ref().unwrap();
        let clone = rules.iter().find(|r| r.names() == &["clone"]).unwrap();
        let args = clone.args().as_ref().unwrap();
        assert_eq!(args[0].value(), CLONE_NAMESPACE_FLAGS);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        let clone3 = rules.iter().find(|r| r.names() == &["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret(), Some(ENOSYS));
        assert!(allowed_names(&plain).iter().any(|n| n == "arch_prctl"));

        let admin: Capabilities = [Capability::SysAdmin].into_iter().collect();
        let names = allowed_names(&runtime_default("x86_64", &admin));
        for expected in ["clone", "clone3", "mount", "unshare", "setns"] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
    }

    #[test]
    fn localhost_profiles_load_from_the_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("team")).unwrap();
        fs::write(
            dir.path().join("team/audit.json"),
            r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        let profile = localhost(dir.path(), "team/audit.json").unwrap();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActLog);
        for bad in ["", "../etc/passwd", "/etc/passwd", "team/../x", "./x"] {
            assert!(
                matches!(
                    localhost(dir.path(), bad),
                    Err(BundleError::SeccompProfileName { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            localhost(dir.path(), "missing.json"),
            Err(BundleError::SeccompProfileRead { .. })
        ));
        fs::write(dir.path().join("bad.json"), "{not json").unwrap();
        assert!(matches!(
            localhost(dir.path(), "bad.json"),
            Err(BundleError::SeccompProfileInvalid { .. })
        ));
    }
}
