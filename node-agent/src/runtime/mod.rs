//! Containers through an OCI runtime's command line (crun, else runc), each
//! watched by a small shim process that reaps it, keeps its logs and records
//! its exit; and the pod sandbox's shared namespaces.
//!
//! [`OciRuntime`] is the narrow trait the pod executor drives. It has two
//! implementations: [`RuntimeCli`] (a real runc or crun binary, one
//! [`shim`] process per container) and [`MemoryRuntime`] (records in memory,
//! for the executor's tests). [`choose`] picks the binary: crun when it can run
//! on this host, else runc.
//!
//! A container's life through the trait: `create` (the runtime has set it up
//! and its pid is known; it waits on `start`), `start` (or both at once:
//! `run`), then `state`/`list`
//! report `Running` until it ends, then `Stopped` with its [`Exit`] (code 143
//! after SIGTERM, as a shell reports it). `Stopped` with `exit: None` means the
//! exit status is unknown: the shim that watched the container was killed, so
//! nobody could read the status (init reaped the container instead).

mod choose;
pub mod cli;
pub(crate) mod files;
pub mod log;
mod memory;
pub mod sandbox;
pub mod shim;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use choose::{ChooseError, RuntimeChoice, RuntimeKind, RuntimePreference, choose};
pub use cli::{RuntimeCli, RuntimeCliConfig};
pub use log::LogLimits;
pub use memory::{ExecBehaviour, MemoryRuntime, Verb};

/// What [`OciRuntime::create`] needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    /// The container id (see [`validate_id`]).
    pub id: String,
    /// The OCI bundle: `config.json` and the root filesystem.
    pub bundle: PathBuf,
    /// The shim's directory: `pid`, `shim.pid`, `exit`, `container.log*`.
    pub shim_dir: PathBuf,
}

/// The OCI runtime's view of a container, as `runc state` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

/// How a container ended, from its shim's exit file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit code, or 128 plus the signal that killed it.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// When the shim reaped it, in milliseconds since the Unix epoch.
    pub finished_at_ms: u64,
}

/// One container as the runtime and its shim see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub status: Status,
    /// The container's init process on the host, while it has one.
    pub pid: Option<u32>,
    /// Set once `status` is `Stopped` and the shim recorded the exit; `None`
    /// when stopped means the exit status is unknown.
    pub exit: Option<Exit>,
}

/// What a command run in a container printed, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    /// At most [`EXEC_OUTPUT_CAP`] bytes; the rest is read and dropped.
    pub stdout: Vec<u8>,
    /// At most [`EXEC_OUTPUT_CAP`] bytes; the rest is read and dropped.
    pub stderr: Vec<u8>,
}

/// How much of an exec's stdout and of its stderr is kept.
pub const EXEC_OUTPUT_CAP: usize = 64 * 1024;

/// The runtime's verbs, as the pod executor uses them. Implementations:
/// [`RuntimeCli`] and [`MemoryRuntime`].
pub trait OciRuntime {
    /// Creates the container; returns once it is `Created` and its pid known.
    fn create(
        &self,
        request: &CreateRequest,
    ) -> impl Future<Output = Result<ContainerInfo, RuntimeError>> + Send;
    /// Starts the user process of a `Created` container.
    fn start(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// `create` and `start` in one: returns once the container is `Running`
    /// and its pid known. A runtime binary does this in one call (`run -d`),
    /// which saves a process per start; a failed run leaves no container.
    fn run(
        &self,
        request: &CreateRequest,
    ) -> impl Future<Output = Result<ContainerInfo, RuntimeError>> + Send;
    /// Sends `signal` to the container's init process.
    fn kill(&self, id: &str, signal: i32) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// Removes a stopped container (any container with `force`).
    fn delete(
        &self,
        id: &str,
        force: bool,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;
    /// The container, or `None` if the runtime does not know it.
    fn state(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ContainerInfo>, RuntimeError>> + Send;
    /// Every container this runtime holds, with exits where recorded.
    fn list(&self) -> impl Future<Output = Result<Vec<ContainerInfo>, RuntimeError>> + Send;
    /// Waits until the container has stopped and returns its exit: `Ok(None)`
    /// when the runtime does not know it, `Some` with `exit: None` inside the
    /// info when it stopped but its exit is unknown.
    fn wait(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ContainerInfo>, RuntimeError>> + Send;
    /// Runs `argv` in the running container and waits at most `timeout`.
    fn exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecOutput, RuntimeError>> + Send;
}

/// Why a runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error("container {id} does not exist")]
    NotFound { id: String },
    #[error("container {id} already exists")]
    AlreadyExists { id: String },
    #[error("container {id} is {status:?}, {action} needs it {wanted}")]
    WrongStatus {
        id: String,
        status: Status,
        action: &'static str,
        wanted: &'static str,
    },
    #[error("running {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("{binary} {command} {id} failed: {message}")]
    Command {
        binary: PathBuf,
        command: &'static str,
        id: String,
        message: String,
    },
    #[error("shim for container {id} failed: {message}")]
    Shim { id: String, message: String },
    #[error("container {id} was not created within {timeout:?}")]
    CreateTimeout { id: String, timeout: Duration },
    #[error("exec in container {id} did not finish within {timeout:?}")]
    ExecTimeout { id: String, timeout: Duration },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unexpected output from {binary} {command}: {detail}")]
    Parse {
        binary: PathBuf,
        command: &'static str,
        detail: String,
    },
}

impl RuntimeError {
    /// Whether trying the same call again later may succeed: true for
    /// timeouts, I/O and spawn failures and the runtime's own errors (a
    /// busy cgroup, a racing state change); false for bad input and for
    /// containers in the wrong state or missing.
    pub fn retry_helps(&self) -> bool {
        match self {
            RuntimeError::InvalidId { .. }
            | RuntimeError::NotFound { .. }
            | RuntimeError::AlreadyExists { .. }
            | RuntimeError::WrongStatus { .. }
            | RuntimeError::Parse { .. } => false,
            RuntimeError::Spawn { .. }
            | RuntimeError::Command { .. }
            | RuntimeError::Shim { .. }
            | RuntimeError::CreateTimeout { .. }
            | RuntimeError::ExecTimeout { .. }
            | RuntimeError::Io { .. } => true,
        }
    }
}

/// Checks a container id the way runc does (`^[\w+-\.]+$`), and that it is
/// usable as a file name: 1 to 1024 bytes of ASCII letters, digits, `_`,
/// `+`, `-` and `.`, and not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let invalid = |reason| {
        Err(RuntimeError::InvalidId {
            id: id.to_owned(),
            reason,
        })
    };
    if id.is_empty() {
        return invalid("it is empty");
    }
    if id.len() > 1024 {
        return invalid("it is longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return invalid("it is a relative directory name");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return invalid("only letters, digits, '_', '+', '-' and '.' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runcs_pattern() {
        for good in ["a", "pod-1234-web-0", "x_y+z.1", "A9"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            "a\0",
            "a:b",
            &"x".repeat(1025),
        ] {
            assert!(
                matches!(validate_id(bad), Err(RuntimeError::InvalidId { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_input_is_not_worth_retrying_but_a_timeout_is() {
        let invalid = validate_id("a/b").unwrap_err();
        assert!(!invalid.retry_helps());
        let timeout = RuntimeError::CreateTimeout {
            id: "a".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.retry_helps());
    }
}
