//! `config.json` for one container: the image config and the pod spec turned
//! into an OCI runtime spec with secure defaults.
//!
//! Defaults follow `runc spec` and containerd's CRI plugin rather than
//! `oci_spec`'s `Spec::default()` (which differs: inheritable and ambient
//! capabilities, no device deny-all, fewer masked paths).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use flotilla_shared::wire::{Container, Seccomp};
use oci_spec::runtime::{
    Capabilities, Linux, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, Mount,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User, get_default_mounts,
};

use super::limits::{capabilities, oom_score_adj, resources};
use super::{BundleInputs, seccomp, user};
use crate::cgroup::Layout;

/// The `PATH` a container gets when neither the image nor the pod sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths under `/proc` and `/sys` hidden from unprivileged containers:
/// runc's list, plus containerd's `/sys/devices/virtual/powercap`.
const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/tpm",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Errors building or writing a bundle's `config.json`. All of them come
/// from the pod spec or the image, so retrying does not help; only
/// [`BundleError::Write`] may work later.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("container {container} has no command: neither the pod nor the image sets one")]
    NoCommand { container: String },
    #[error("invalid argument {index} of container {container}: {reason}")]
    InvalidArg {
        container: String,
        index: usize,
        reason: &'static str,
    },
    #[error("invalid environment variable {name:?}: {reason}")]
    InvalidEnv { name: String, reason: &'static str },
    #[error("working directory {dir:?} is not absolute")]
    RelativeWorkingDir { dir: String },
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser { user: String },
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup { group: String },
    #[error("refusing {path}: {reason}")]
    EtcFile { path: PathBuf, reason: &'static str },
    #[error("cannot read {path}: {source}")]
    ReadEtc {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("container has runAsNonRoot and image will run as root")]
    RunAsRoot,
    #[error("unknown capability {name:?}")]
    UnknownCapability { name: String },
    #[error("volume mount of container {container} names unknown volume {volume:?}")]
    UnknownVolume { container: String, volume: String },
    #[error("invalid mount path {path:?}: {reason}")]
    InvalidMountPath { path: String, reason: &'static str },
    #[error("invalid subPath {sub_path:?} of volume {volume}: {reason}")]
    InvalidSubPath {
        volume: String,
        sub_path: String,
        reason: String,
    },
    #[error("two mounts at {path}")]
    DuplicateMount { path: String },
    #[error(
        "pod {pod}: hostNetwork is {host_network} but the sandbox network namespace says otherwise"
    )]
    SandboxMismatch { pod: String, host_network: bool },
    #[error("resource value {what} = {value} is out of range")]
    ResourceRange { what: &'static str, value: u64 },
    #[error("invalid seccomp profile name {name:?}: {reason}")]
    SeccompProfileName { name: String, reason: &'static str },
    #[error("cannot read seccomp profile {path}: {source}")]
    SeccompProfileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid seccomp profile {path}: {detail}")]
    SeccompProfileInvalid { path: PathBuf, detail: String },
    #[error("invalid cgroups path: {0}")]
    CgroupsPath(#[from] crate::cgroup::CgroupError),
    #[error("cannot serialize config.json: {0}")]
    Serialize(serde_json::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl BundleError {
    /// Whether the same call may succeed later (only disk writes may).
    pub fn retry_helps(&self) -> bool {
        matches!(self, BundleError::Write { .. })
    }
}

/// Builds the runtime spec of one container. Reads only the rootfs's
/// `/etc/passwd` and `/etc/group`, a `Localhost` seccomp profile, and
/// creates a missing `subPath` directory inside its volume.
pub fn build(inputs: &BundleInputs<'_>) -> Result<Spec, BundleError> {
    let ctr = inputs.container;
    let image = inputs.image.config().clone().unwrap_or_default();
    let security = &ctr.security;

    let user = user::resolve(
        inputs.rootfs,
        image.user().as_deref().unwrap_or(""),
        security,
        &inputs.pod.security,
    )?;
    if security.run_as_non_root && user.uid == 0 {
        return Err(BundleError::RunAsRoot);
    }
    let caps = capabilities(ctr)?;

    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_args(Some(command(ctr, image.entrypoint(), image.cmd())?));
    process.set_env(Some(environment(ctr, image.env(), inputs.hostname)?));
    process.set_cwd(working_dir(ctr, image.working_dir())?);
    let mut oci_user = User::default();
    oci_user.set_uid(user.uid);
    oci_user.set_gid(user.gid);
    oci_user.set_additional_gids(Some(user.additional_gids));
    process.set_user(oci_user);
    let mut oci_caps = LinuxCapabilities::default();
    oci_caps.set_bounding(Some(caps.clone()));
    oci_caps.set_effective(Some(caps.clone()));
    oci_caps.set_permitted(Some(caps.clone()));
    oci_caps.set_inheritable(None);
    oci_caps.set_ambient(None);
    process.set_capabilities(Some(oci_caps));
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(1024u64)
        .soft(1024u64)
        .build()
        .expect("every field of an rlimit is set");
    process.set_rlimits(Some(vec![nofile]));
    process.set_no_new_privileges(Some(!security.allow_privilege_escalation));
    process.set_oom_score_adj(Some(oom_score_adj(
        inputs.pod,
        ctr,
        inputs.node_memory_bytes,
    )));

    let mut root = Root::default();
    root.set_path(inputs.rootfs.to_owned());
    root.set_readonly(Some(security.read_only_root_filesystem));

    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_owned());
    spec.set_root(Some(root));
    spec.set_process(Some(process));
    let own_uts = inputs.namespaces.uts.is_some();
    spec.set_hostname(own_uts.then(|| inputs.hostname.to_owned()));
    spec.set_mounts(Some(mounts(inputs)?));
    spec.set_annotations(None);
    spec.set_linux(Some(linux(inputs, &caps)?));
    Ok(spec)
}

/// Kubernetes' rule: `command` replaces the entrypoint and drops the
/// image's cmd unless `args` is set; `args` replaces the cmd.
fn command(
    ctr: &Container,
    entrypoint: &Option<Vec<String>>,
    cmd: &Option<Vec<String>>,
) -> Result<Vec<String>, BundleError> {
    let mut argv = if ctr.command.is_empty() {
        entrypoint.clone().unwrap_or_default()
    } else {
        ctr.command.clone()
    };
    if !ctr.args.is_empty() {
        argv.extend(ctr.args.iter().cloned());
    } else if ctr.command.is_empty() {
        argv.extend(cmd.iter().flatten().cloned());
    }
    if argv.is_empty() {
        return Err(BundleError::NoCommand {
            container: ctr.name.clone(),
        });
    }
    for (index, arg) in argv.iter().enumerate() {
        let reason = if arg.contains('\0') {
            "contains a NUL byte"
        } else if index == 0 && arg.is_empty() {
            "the program name is empty"
        } else {
            continue;
        };
        return Err(BundleError::InvalidArg {
            container: ctr.name.clone(),
            index,
            reason,
        });
    }
    Ok(argv)
}

/// `HOSTNAME`, then the image's env, then the container's; a later value of
/// a name replaces an earlier one in place. `PATH` is added when missing.
fn environment(
    ctr: &Container,
    image_env: &Option<Vec<String>>,
    hostname: &str,
) -> Result<Vec<String>, BundleError> {
    let mut vars: Vec<(String, String)> = vec![("HOSTNAME".into(), hostname.into())];
    let mut set = |name: &str, value: &str| -> Result<(), BundleError> {
        let reason = if name.is_empty() {
            "empty name"
        } else if name.contains('=') {
            "name contains '='"
        } else if name.contains('\0') || value.contains('\0') {
            "contains a NUL byte"
        } else {
            match vars.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value.to_owned(),
                None => vars.push((name.to_owned(), value.to_owned())),
            }
            return Ok(());
        };
        Err(BundleError::InvalidEnv {
            name: name.to_owned(),
            reason,
        })
    };
    for entry in image_env.iter().flatten() {
        let (name, value) = entry
            .split_once('=')
            .ok_or_else(|| BundleError::InvalidEnv {
                name: entry.clone(),
                reason: "image env entry without '='",
            })?;
        set(name, value)?;
    }
    for var in &ctr.env {
        set(&var.name, &var.value)?;
    }
    if !vars.iter().any(|(n, _)| n == "PATH") {
        vars.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    Ok(vars.into_iter().map(|(n, v)| format!("{n}={v}")).collect())
}

fn working_dir(ctr: &Container, image_dir: &Option<String>) -> Result<PathBuf, BundleError> {
    let dir = match (ctr.working_dir.as_str(), image_dir.as_deref()) {
        ("", None | Some("")) => "/",
        ("", Some(image)) => image,
        (ctr, _) => ctr,
    };
    if !dir.starts_with('/') {
        return Err(BundleError::RelativeWorkingDir {
            dir: dir.to_owned(),
        });
    }
    Ok(PathBuf::from(dir))
}

/// `/`-rooted and free of `.`/`..`, as a container path must be.
fn check_container_path(path: &str) -> Result<(), BundleError> {
    let invalid = |reason| BundleError::InvalidMountPath {
        path: path.to_owned(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(invalid("not absolute"));
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(invalid("contains `..`"));
    }
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    if Path::new(path).components().count() < 2 {
        return Err(invalid("is the root"));
    }
    Ok(())
}

fn bind(destination: &str, source: &Path, read_only: bool) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(PathBuf::from(destination));
    mount.set_typ(Some("bind".into()));
    mount.set_source(Some(source.to_owned()));
    let mode = if read_only { "ro" } else { "rw" };
    mount.set_options(Some(vec!["rbind".into(), "rprivate".into(), mode.into()]));
    mount
}

/// Resolves a `subPath` inside `volume` without following symlinks, creating
/// missing directories as kubelet does.
fn resolve_sub_path(
    volume_name: &str,
    volume: &Path,
    sub_path: &str,
) -> Result<PathBuf, BundleError> {
    let invalid = |reason: String| BundleError::InvalidSubPath {
        volume: volume_name.to_owned(),
        sub_path: sub_path.to_owned(),
        reason,
    };
    let rel = Path::new(sub_path);
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(invalid("must be relative without `..`".into()));
    }
    let mut path = volume.to_owned();
    for part in rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
    {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(invalid(format!("{} is a symlink", path.display())));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&path)
                    .map_err(|e| invalid(format!("cannot create {}: {e}", path.display())))?;
            }
            Err(e) => return Err(invalid(format!("cannot inspect {}: {e}", path.display()))),
        }
    }
    Ok(path)
}

/// runc's default mounts, the pod's `/etc` files, then the volume mounts.
fn mounts(inputs: &BundleInputs<'_>) -> Result<Vec<Mount>, BundleError> {
    let ctr = inputs.container;
    let privileged = ctr.security.privileged;
    let mut mounts: Vec<Mount> = get_default_mounts();
    if privileged {
        // Privileged containers may write sysfs and their cgroups.
        for m in &mut mounts {
            if matches!(m.typ().as_deref(), Some("sysfs" | "cgroup")) {
                let opts = m.options().clone().unwrap_or_default();
                m.set_options(Some(
                    opts.into_iter()
                        .filter(|o| o != "ro")
                        .chain(["rw".into()])
                        .collect(),
                ));
            }
        }
    }
    let mut volume_mounts = Vec::new();
    let mut targets: BTreeSet<String> = BTreeSet::new();
    for vm in &ctr.volume_mounts {
        check_container_path(&vm.mount_path)?;
        let target = vm.mount_path.trim_end_matches('/').to_owned();
        if !targets.insert(target.clone()) {
            return Err(BundleError::DuplicateMount { path: target });
        }
        let host =
            inputs
                .volumes
                .volumes
                .get(&vm.volume)
                .ok_or_else(|| BundleError::UnknownVolume {
                    container: ctr.name.clone(),
                    volume: vm.volume.clone(),
                })?;
        let source = if vm.sub_path.is_empty() {
            host.clone()
        } else {
            resolve_sub_path(&vm.volume, host, &vm.sub_path)?
        };
        volume_mounts.push(bind(&target, &source, vm.read_only));
    }
    // The pod's /etc files, unless a volume is mounted there.
    let etc = &inputs.volumes.etc;
    let rootfs_ro = ctr.security.read_only_root_filesystem;
    let etc_files = [
        ("/etc/hosts", Some(&etc.hosts), rootfs_ro),
        ("/etc/hostname", Some(&etc.hostname), rootfs_ro),
        ("/etc/resolv.conf", etc.resolv_conf.as_ref(), true),
    ];
    for (dest, source, read_only) in etc_files {
        if let Some(source) = source
            && !targets.contains(dest)
        {
            mounts.push(bind(dest, source, read_only));
        }
    }
    mounts.extend(volume_mounts);
    Ok(mounts)
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns.set_path(path.map(Path::to_owned));
    ns
}

fn linux(inputs: &BundleInputs<'_>, caps: &Capabilities) -> Result<Linux, BundleError> {
    let ns = inputs.namespaces;
    let pod = inputs.pod;
    if pod.host_network != ns.net.is_none() || pod.host_network != ns.uts.is_none() {
        return Err(BundleError::SandboxMismatch {
            pod: pod.name.clone(),
            host_network: pod.host_network,
        });
    }
    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Pid, None),
        namespace(LinuxNamespaceType::Mount, None),
        namespace(LinuxNamespaceType::Ipc, Some(&ns.ipc)),
    ];
    if let Some(net) = &ns.net {
        namespaces.push(namespace(LinuxNamespaceType::Network, Some(net)));
    }
    if let Some(uts) = &ns.uts {
        namespaces.push(namespace(LinuxNamespaceType::Uts, Some(uts)));
    }
    if inputs.cgroup_layout == Layout::V2 {
        namespaces.push(namespace(LinuxNamespaceType::Cgroup, None));
    }

    let security = &inputs.container.security;
    crate::cgroup::validate_path(inputs.cgroups_path)?;
    let mut linux = Linux::default();
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(PathBuf::from(inputs.cgroups_path)));
    linux.set_resources(Some(resources(inputs.container)?));
    linux.set_sysctl(None);
    linux.set_uid_mappings(None);
    linux.set_gid_mappings(None);
    linux.set_devices(None);
    if security.privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        linux.set_seccomp(None);
    } else {
        linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|s| (*s).to_owned()).collect()));
        linux.set_readonly_paths(Some(
            READONLY_PATHS.iter().map(|s| (*s).to_owned()).collect(),
        ));
        linux.set_seccomp(match &security.seccomp {
            Seccomp::Unconfined => None,
            Seccomp::RuntimeDefault => Some(seccomp::runtime_default(std::env::consts::ARCH, caps)),
            Seccomp::Localhost { profile } => {
                Some(seccomp::localhost(inputs.seccomp_dir, profile)?)
            }
        });
    }
    Ok(linux)
}

#[cfg(test)]
mod tests;
