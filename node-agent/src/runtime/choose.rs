//! Which OCI runtime binary to drive: crun when it can run on this host
//! (smaller and faster to start), else runc.
//!
//! crun (1.8 at least) refuses hybrid cgroup hosts whose v2 hierarchy has
//! controllers enabled ("cgroups in hybrid mode not supported, drop all
//! controllers from cgroupv2"): on such a host `/sys/fs/cgroup/unified/
//! cgroup.controllers` is not empty. [`choose`] checks exactly that, and that
//! the binary runs at all (`--version`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

/// What the operator asked for (`auto`, `crun`, `runc` or a path).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RuntimePreference {
    /// crun if it can run here, else runc.
    #[default]
    Auto,
    /// crun, or an error if it cannot run here.
    Crun,
    /// runc.
    Runc,
    /// This binary, taken as crun if its file name contains "crun".
    Path(PathBuf),
}

impl FromStr for RuntimePreference {
    type Err = ChooseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(RuntimePreference::Auto),
            "crun" => Ok(RuntimePreference::Crun),
            "runc" => Ok(RuntimePreference::Runc),
            path if path.starts_with('/') => Ok(RuntimePreference::Path(PathBuf::from(path))),
            other => Err(ChooseError::BadPreference {
                value: other.to_owned(),
            }),
        }
    }
}

/// Which runtime a binary is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    Crun,
    Runc,
}

/// The binary chosen, and why crun was not, if it was not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeChoice {
    pub binary: PathBuf,
    pub kind: RuntimeKind,
    /// Set when `Auto` fell back to runc: what stopped crun.
    pub fallback_reason: Option<String>,
}

/// Why no runtime could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    #[error("runtime preference {value:?} is none of auto, crun, runc or an absolute path")]
    BadPreference { value: String },
    #[error("{name} not found in {searched}")]
    NotFound {
        name: &'static str,
        searched: String,
    },
    #[error("crun at {binary} cannot run on this host: {reason}")]
    CrunUnusable { binary: PathBuf, reason: String },
    #[error("{binary} does not run: {reason}")]
    Broken { binary: PathBuf, reason: String },
}

/// Directories searched besides `$PATH` (the agent may run with a short one).
const STANDARD_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Picks the runtime for `preference` on this host, whose cgroup file system
/// is at `cgroup_root` (normally `/sys/fs/cgroup`). A fallback from crun to
/// runc is logged as a warning and its reason returned.
pub fn choose(
    preference: &RuntimePreference,
    cgroup_root: &Path,
) -> Result<RuntimeChoice, ChooseError> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.extend(STANDARD_DIRS.iter().map(PathBuf::from));
    choose_in(preference, cgroup_root, &dirs)
}

/// [`choose`] with the directories to search given.
pub(crate) fn choose_in(
    preference: &RuntimePreference,
    cgroup_root: &Path,
    dirs: &[PathBuf],
) -> Result<RuntimeChoice, ChooseError> {
    match preference {
        RuntimePreference::Runc => usable(find("runc", dirs)?, RuntimeKind::Runc, None),
        RuntimePreference::Crun => {
            let binary = find("crun", dirs)?;
            match crun_blocker(cgroup_root) {
                Some(reason) => Err(ChooseError::CrunUnusable { binary, reason }),
                None => usable(binary, RuntimeKind::Crun, None),
            }
        }
        RuntimePreference::Path(binary) => {
            let is_crun = binary
                .file_name()
                .is_some_and(|name| name.to_string_lossy().contains("crun"));
            if is_crun && let Some(reason) = crun_blocker(cgroup_root) {
                return Err(ChooseError::CrunUnusable {
                    binary: binary.clone(),
                    reason,
                });
            }
            let kind = if is_crun {
                RuntimeKind::Crun
            } else {
                RuntimeKind::Runc
            };
            usable(binary.clone(), kind, None)
        }
        RuntimePreference::Auto => {
            let crun = find("crun", dirs)
                .map_err(|e| e.to_string())
                .and_then(|binary| match crun_blocker(cgroup_root) {
                    Some(reason) => Err(reason),
                    None => usable(binary, RuntimeKind::Crun, None).map_err(|e| e.to_string()),
                });
            match crun {
                Ok(choice) => Ok(choice),
                Err(reason) => {
                    tracing::warn!(%reason, "crun cannot be used, falling back to runc");
                    usable(find("runc", dirs)?, RuntimeKind::Runc, Some(reason))
                }
            }
        }
    }
}

/// Why crun cannot create containers on this host, if it cannot: hybrid
/// cgroups with controllers in the v2 hierarchy.
pub fn crun_blocker(cgroup_root: &Path) -> Option<String> {
    let path = cgroup_root.join("unified/cgroup.controllers");
    let controllers = std::fs::read_to_string(&path).ok()?;
    let controllers = controllers.trim();
    (!controllers.is_empty()).then(|| {
        format!(
            "hybrid cgroups with controllers enabled in the v2 hierarchy ({} lists {controllers}), which crun does not support",
            path.display()
        )
    })
}

fn find(name: &'static str, dirs: &[PathBuf]) -> Result<PathBuf, ChooseError> {
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| ChooseError::NotFound {
            name,
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        })
}

/// Checks that the binary runs (`<binary> --version` exits 0).
fn usable(
    binary: PathBuf,
    kind: RuntimeKind,
    fallback_reason: Option<String>,
) -> Result<RuntimeChoice, ChooseError> {
    let status = Command::new(&binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => Ok(RuntimeChoice {
            binary,
            kind,
            fallback_reason,
        }),
        Ok(status) => Err(ChooseError::Broken {
            binary,
            reason: format!("--version {status}"),
        }),
        Err(e) => Err(ChooseError::Broken {
            binary,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A directory with fake `crun` and `runc` scripts that answer `--version`.
    fn fake_bins(crun_works: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, code) in [("runc", 0), ("crun", if crun_works { 0 } else { 1 })] {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\nexit {code}\n")).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        dir
    }

    fn cgroups(controllers: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        if let Some(controllers) = controllers {
            std::fs::create_dir(dir.path().join("unified")).expect("mkdir");
            std::fs::write(dir.path().join("unified/cgroup.controllers"), controllers)
                .expect("write");
        }
        dir
    }

    #[test]
    fn auto_prefers_crun_when_the_v2_hierarchy_is_the_only_one_or_empty() {
        let bins = fake_bins(true);
        for cg in [cgroups(None), cgroups(Some("\n"))] {
            let choice = choose_in(
                &RuntimePreference::Auto,
                cg.path(),
                &[bins.path().to_owned()],
            )
            .expect("choice");
            assert_eq!(choice.kind, RuntimeKind::Crun);
            assert_eq!(choice.fallback_reason, None);
        }
    }

    #[test]
    fn auto_falls_back_to_runc_on_hybrid_cgroups_with_v2_controllers() {
        let bins = fake_bins(true);
        let cg = cgroups(Some("hugetlb\n"));
        let choice = choose_in(
            &RuntimePreference::Auto,
            cg.path(),
            &[bins.path().to_owned()],
        )
        .expect("choice");
        assert_eq!(choice.kind, RuntimeKind::Runc);
        assert_eq!(choice.binary, bins.path().join("runc"));
        let reason = choice.fallback_reason.expect("a reason");
        assert!(
            reason.contains("hybrid") && reason.contains("hugetlb"),
            "{reason}"
        );
    }

    #[test]
    fn auto_falls_back_when_crun_does_not_run_or_is_missing() {
        let bins = fake_bins(false);
        let cg = cgroups(None);
        let choice = choose_in(
            &RuntimePreference::Auto,
            cg.path(),
            &[bins.path().to_owned()],
        )
        .expect("choice");
        assert_eq!(choice.kind, RuntimeKind::Runc);
        assert!(
            choice
                .fallback_reason
                .expect("reason")
                .contains("--version")
        );
        std::fs::remove_file(bins.path().join("crun")).expect("rm");
        let choice = choose_in(
            &RuntimePreference::Auto,
            cg.path(),
            &[bins.path().to_owned()],
        )
        .expect("choice");
        assert!(
            choice
                .fallback_reason
                .expect("reason")
                .contains("not found")
        );
    }

    #[test]
    fn asking_for_crun_on_a_host_it_cannot_run_on_is_an_error() {
        let bins = fake_bins(true);
        let cg = cgroups(Some("hugetlb"));
        let err = choose_in(
            &RuntimePreference::Crun,
            cg.path(),
            &[bins.path().to_owned()],
        )
        .unwrap_err();
        assert!(matches!(err, ChooseError::CrunUnusable { .. }), "{err}");
        let runc = choose_in(
            &RuntimePreference::Runc,
            cg.path(),
            &[bins.path().to_owned()],
        )
        .expect("runc");
        assert_eq!(runc.kind, RuntimeKind::Runc);
    }

    #[test]
    fn preferences_parse_and_relative_paths_are_refused() {
        assert_eq!(
            "auto".parse::<RuntimePreference>().unwrap(),
            RuntimePreference::Auto
        );
        assert_eq!(
            "/opt/crun".parse::<RuntimePreference>().unwrap(),
            RuntimePreference::Path("/opt/crun".into())
        );
        assert!("bin/runc".parse::<RuntimePreference>().is_err());
    }
}
