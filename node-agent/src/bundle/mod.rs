//! The OCI bundle of one container: `config.json` built from the image config
//! and the pod spec with secure defaults ([`spec::build`]), the container's
//! writable rootfs ([`rootfs`]), and the pod's volumes ([`volumes`]).
//!
//! A container's bundle directory is `<state>/containers/<id>/`: `config.json`
//! written by [`write`], `rootfs/` from [`rootfs::prepare`]. The pod's volumes
//! and its `/etc/hosts` and `/etc/hostname` come from [`volumes::prepare`].

pub mod limits;
pub mod rootfs;
#[cfg(test)]
mod runc_tests;
pub mod seccomp;
pub mod spec;
mod user;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flotilla_shared::wire::{Container, Pod};
use oci_spec::image::ImageConfiguration;

use crate::cgroup::Layout;
use crate::state::write_atomic_volatile_with_mode;

pub use spec::BundleError;

/// The pod sandbox's namespaces that every container of the pod joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPaths {
    /// The network namespace file; `None` for a hostNetwork pod.
    pub net: Option<PathBuf>,
    pub ipc: PathBuf,
    /// The UTS namespace file; `None` for a hostNetwork pod (host UTS).
    pub uts: Option<PathBuf>,
}

/// Files bind-mounted over the container's `/etc`, prepared per pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    /// The host's resolver configuration, when it has one.
    pub resolv_conf: Option<PathBuf>,
}

/// A pod's prepared volumes: host paths by volume name, and its `/etc` files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodVolumes {
    pub volumes: BTreeMap<String, PathBuf>,
    pub etc: EtcFiles,
}

/// Everything [`spec::build`] needs for one container.
#[derive(Clone, Copy, Debug)]
pub struct BundleInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub image: &'a ImageConfiguration,
    /// The container's root filesystem (the overlay mount point or copy);
    /// its `/etc/passwd` and `/etc/group` resolve the image's user.
    pub rootfs: &'a Path,
    pub namespaces: &'a SandboxPaths,
    pub volumes: &'a PodVolumes,
    /// `linux.cgroupsPath`: `/flotilla/pod-<uid>/<container-id>`.
    pub cgroups_path: &'a str,
    /// The pod's hostname: its name, or the node's for a hostNetwork pod
    /// (which keeps the host's UTS namespace, so only `HOSTNAME` uses it).
    pub hostname: &'a str,
    /// Where `Localhost` seccomp profiles live.
    pub seccomp_dir: &'a Path,
    /// Decides the cgroup namespace (v2 only).
    pub cgroup_layout: Layout,
    /// The device's memory, for the Burstable OOM score as kubelet computes it.
    pub node_memory_bytes: u64,
}

/// Writes `config.json` into the bundle directory `dir` atomically (a temp
/// file and a rename: a reader never sees half of it).
pub fn write(dir: &Path, spec: &oci_spec::runtime::Spec) -> Result<(), BundleError> {
    let json = serde_json::to_vec(spec).map_err(BundleError::Serialize)?;
    // Without fsync: it is built again for every run, and the runtime has
    // read it before the container exists.
    write_atomic_volatile_with_mode(&dir.join("config.json"), &json, 0o600).map_err(|source| {
        BundleError::Write {
            path: dir.join("config.json"),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn writing_config_json_replaces_the_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), "old").unwrap();
        let spec = oci_spec::runtime::Spec::default();
        write(dir.path(), &spec).unwrap();
        let back: oci_spec::runtime::Spec =
            serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(back, spec);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.json"]);
    }

    #[test]
    fn writing_into_a_missing_directory_fails_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = write(&missing, &oci_spec::runtime::Spec::default()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
