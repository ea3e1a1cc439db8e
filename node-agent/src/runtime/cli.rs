//! [`RuntimeCli`]: the [`OciRuntime`] that drives a runc or crun binary.
//!
//! Every call passes `--root <root>` (our containers apart from anyone
//! else's) and `--log <file> --log-format json`, a file per call, so that the
//! runtime's own error text ends up in the [`RuntimeError`]. `create` and
//! `run` go through a [`shim`](super::shim) process per container, which
//! holds the container's stdio and records its exit; the agent never waits
//! for a created container's output (`Command::output()` would wait for the
//! container to end, since it inherits the pipes). The shim reports the
//! container's pid on a pipe, and one spare shim is kept started ahead
//! (`shim-standby`), so that a start waits neither for a process to be made
//! nor for a file to be polled.
//!
//! Files: `<work_dir>/shims/<id>` is a symlink to the container's shim
//! directory, so that `state` and `list` find exit files after the agent
//! restarts; `<work_dir>/calls/` holds the per-call runtime logs while a call
//! runs.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use super::files::{self, ShimRecord};
use super::log::LogLimits;
use super::shim::{self, ShimArgs};
use super::{
    ContainerInfo, CreateRequest, EXEC_OUTPUT_CAP, ExecOutput, OciRuntime, RuntimeChoice,
    RuntimeError, Status, validate_id,
};
use crate::sys::process as sysproc;

/// How often [`OciRuntime::wait`] asks the runtime about a container whose
/// shim is gone.
const UNWATCHED_POLL: Duration = Duration::from_secs(2);

/// How a [`RuntimeCli`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeCliConfig {
    /// The runtime binary (from [`RuntimeChoice`]).
    pub binary: PathBuf,
    /// The runtime's `--root` (normally `/run/flotilla/runc`).
    pub root: PathBuf,
    /// Our own bookkeeping: `shims/` links and `calls/` logs.
    pub work_dir: PathBuf,
    /// The executable that has the `shim` subcommand (normally
    /// `/proc/self/exe`, the agent itself).
    pub shim_exe: PathBuf,
    /// Caps of each container's log.
    pub log_limits: LogLimits,
    /// How long `create` waits for the runtime before giving up.
    pub create_timeout: Duration,
    /// How long `state` waits for a running shim to record an exit the
    /// runtime already reports (the shim reaps within milliseconds).
    pub exit_grace: Duration,
}

impl RuntimeCliConfig {
    /// The defaults for `choice`, with the runtime's root and our work dir.
    pub fn new(choice: &RuntimeChoice, root: &Path, work_dir: &Path) -> Self {
        RuntimeCliConfig {
            binary: choice.binary.clone(),
            root: root.to_owned(),
            work_dir: work_dir.to_owned(),
            shim_exe: PathBuf::from("/proc/self/exe"),
            log_limits: LogLimits::default(),
            create_timeout: Duration::from_secs(60),
            exit_grace: Duration::from_secs(2),
        }
    }
}

/// Drives runc or crun; see the module documentation.
#[derive(Debug)]
pub struct RuntimeCli {
    config: RuntimeCliConfig,
    calls: AtomicU64,
    /// A shim started ahead (`shim-standby`), waiting on its stdin for the
    /// next container: a start then does not wait for a process to be
    /// made and to load. Made again after each start.
    spare: Arc<Mutex<Option<tokio::process::Child>>>,
    /// A spare is being made: a burst of starts makes one, not one each
    /// (each an exec of the agent, thrown away but the last).
    refilling: Arc<std::sync::atomic::AtomicBool>,
}

/// What `runc state` and `runc list --format json` say about a container.
#[derive(Debug, Deserialize)]
struct RuntimeState {
    id: String,
    #[serde(default)]
    pid: i64,
    status: String,
}

/// How often a stopped container's exit file is looked for while its shim
/// is about to write it.
const EXIT_POLL: Duration = Duration::from_millis(2);

impl RuntimeCli {
    /// Creates the root and work directories if needed.
    pub fn new(config: RuntimeCliConfig) -> Result<Self, RuntimeError> {
        for dir in [
            config.root.clone(),
            config.work_dir.join("shims"),
            config.work_dir.join("calls"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| RuntimeError::Io { path: dir, source })?;
        }
        remove_stale_call_logs(&config.work_dir.join("calls"));
        Ok(RuntimeCli {
            config,
            calls: AtomicU64::new(0),
            spare: Arc::default(),
            refilling: Arc::default(),
        })
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &RuntimeCliConfig {
        &self.config
    }

    /// The shim directory of container `id`, if it was created through us.
    pub fn shim_dir(&self, id: &str) -> Option<PathBuf> {
        std::fs::read_link(self.link(id)).ok()
    }

    fn link(&self, id: &str) -> PathBuf {
        self.config.work_dir.join("shims").join(id)
    }

    fn known_to_runtime(&self, id: &str) -> bool {
        self.config.root.join(id).exists()
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> RuntimeError + '_ {
        move |source| RuntimeError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A fresh runtime log path for one call.
    fn call_log(&self, command: &str) -> PathBuf {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        self.config
            .work_dir
            .join("calls")
            .join(format!("{command}-{}-{n}.log", std::process::id()))
    }

    fn command(&self, log: &Path, command: &str) -> Command {
        let mut cmd = Command::new(&self.config.binary);
        cmd.arg("--root")
            .arg(&self.config.root)
            .arg("--log")
            .arg(log)
            .args(["--log-format", "json", command])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a short runtime command that starts no process of its own and
    /// returns its stdout; a failure carries the runtime's error text.
    async fn run(
        &self,
        command: &'static str,
        id: &str,
        args: &[&str],
    ) -> Result<Vec<u8>, RuntimeError> {
        let log = self.call_log(command);
        let output = self
            .command(&log, command)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|source| RuntimeError::Spawn {
                binary: self.config.binary.clone(),
                source,
            })?;
        let errors = files::runtime_log_errors(&log);
        let _ = std::fs::remove_file(&log);
        if output.status.success() {
            return Ok(output.stdout);
        }
        if !id.is_empty() && !self.known_to_runtime(id) {
            return Err(RuntimeError::NotFound { id: id.to_owned() });
        }
        let message = if errors.is_empty() {
            format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        } else {
            errors
        };
        Err(RuntimeError::Command {
            binary: self.config.binary.clone(),
            command,
            id: id.to_owned(),
            message,
        })
    }

    fn parse_status(&self, command: &'static str, status: &str) -> Result<Status, RuntimeError> {
        match status {
            "creating" => Ok(Status::Creating),
            "created" => Ok(Status::Created),
            "running" => Ok(Status::Running),
            "paused" => Ok(Status::Paused),
            "stopped" => Ok(Status::Stopped),
            other => Err(RuntimeError::Parse {
                binary: self.config.binary.clone(),
                command,
                detail: format!("unknown status {other:?}"),
            }),
        }
    }

    /// Joins the runtime's view with the shim's exit file.
    async fn merge(
        &self,
        command: &'static str,
        state: RuntimeState,
    ) -> Result<ContainerInfo, RuntimeError> {
        let status = self.parse_status(command, &state.status)?;
        let pid = u32::try_from(state.pid).ok().filter(|pid| *pid > 0);
        if status != Status::Stopped {
            return Ok(ContainerInfo {
                id: state.id,
                status,
                pid,
                exit: None,
            });
        }
        let exit = match self.shim_dir(&state.id) {
            Some(dir) => self.wait_exit_file(&dir).await?,
            None => None,
        };
        Ok(ContainerInfo {
            id: state.id,
            status,
            pid: None,
            exit,
        })
    }

    /// The exit file of a stopped container; if its shim still runs, it is
    /// about to write it, so wait for it up to `exit_grace`.
    async fn wait_exit_file(&self, dir: &Path) -> Result<Option<super::Exit>, RuntimeError> {
        let exit_path = dir.join(files::EXIT);
        let deadline = tokio::time::Instant::now() + self.config.exit_grace;
        loop {
            if let Some(exit) = files::read_exit(dir).map_err(Self::io(&exit_path))? {
                return Ok(Some(exit));
            }
            let shim_alive = ShimRecord::read(dir)
                .ok()
                .flatten()
                .is_some_and(|record| record.is_alive());
            if !shim_alive || tokio::time::Instant::now() >= deadline {
                // The shim is gone without a record (killed): unknown.
                return files::read_exit(dir).map_err(Self::io(&exit_path));
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// Points `<work_dir>/shims/<id>` at `shim_dir` (replacing any old link).
    fn write_link(&self, id: &str, shim_dir: &Path) -> Result<(), RuntimeError> {
        let link = self.link(id);
        let tmp = self
            .config
            .work_dir
            .join("shims")
            .join(format!(".{id}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(shim_dir, &tmp).map_err(Self::io(&tmp))?;
        std::fs::rename(&tmp, &link).map_err(Self::io(&link))
    }

    fn remove_link(&self, id: &str) -> Result<(), RuntimeError> {
        let link = self.link(id);
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Self::io(&link)(e)),
            _ => Ok(()),
        }
    }

    /// What went wrong in a shim that ended before the container was created.
    fn shim_failure(dir: &Path, status: Option<ExitStatus>) -> String {
        let runtime = files::runtime_log_errors(&dir.join(files::RUNTIME_LOG));
        let shim_log = std::fs::read_to_string(dir.join(files::SHIM_LOG)).unwrap_or_default();
        let shim_last = shim_log.lines().last().unwrap_or("").trim().to_owned();
        match (runtime.is_empty(), shim_last.is_empty()) {
            (false, _) => runtime,
            (true, false) => shim_last,
            (true, true) => match status {
                Some(status) => format!("the shim ended ({status}) without a message"),
                None => "the shim gave no sign of progress".to_owned(),
            },
        }
    }

    /// How a shim is started: `shim-standby`, which reads its arguments
    /// from stdin. Its stderr is the agent's until it knows its container.
    fn standby_command(&self) -> Command {
        let mut cmd = Command::new(&self.config.shim_exe);
        cmd.arg("shim-standby")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd
    }

    /// The spare shim if it still waits, else a new one.
    fn take_shim(&self) -> Result<tokio::process::Child, RuntimeError> {
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = spare
            && matches!(child.try_wait(), Ok(None))
        {
            return Ok(child);
        }
        self.standby_command()
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                binary: self.config.shim_exe.clone(),
                source,
            })
    }

    /// Starts the next spare shim, off the caller's path (making a process
    /// blocks the thread for a while).
    fn refill_spare(&self) {
        use std::sync::atomic::Ordering;
        if self
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
            || self.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let mut cmd = self.standby_command();
        let spare = Arc::clone(&self.spare);
        let refilling = Arc::clone(&self.refilling);
        tokio::task::spawn_blocking(move || {
            match cmd.spawn() {
                Ok(child) => {
                    let old = spare
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .replace(child);
                    // A dead spare replaced: it ends on EOF.
                    drop(old);
                }
                Err(error) => tracing::debug!(%error, "starting a spare shim"),
            }
            refilling.store(false, Ordering::Release);
        });
    }

    /// Undoes a failed create: the runtime's state, our link.
    async fn abandon(&self, id: &str) {
        if self.known_to_runtime(id) {
            let _ = self.run("delete", id, &["--force", id]).await;
        }
        let _ = self.remove_link(id);
    }
}

impl RuntimeCli {
    /// Creates the container through a shim, and starts it too with
    /// `start` (the runtime's `run -d`); returns once the shim reports the
    /// runtime done and the container's pid.
    async fn launch(
        &self,
        request: &CreateRequest,
        start: bool,
    ) -> Result<ContainerInfo, RuntimeError> {
        let id = request.id.as_str();
        validate_id(id)?;
        let config_json = request.bundle.join("config.json");
        std::fs::metadata(&config_json).map_err(Self::io(&config_json))?;
        let bundle = request
            .bundle
            .canonicalize()
            .map_err(Self::io(&request.bundle))?;
        std::fs::create_dir_all(&request.shim_dir).map_err(Self::io(&request.shim_dir))?;
        let dir = request
            .shim_dir
            .canonicalize()
            .map_err(Self::io(&request.shim_dir))?;
        if self.known_to_runtime(id) {
            return Err(RuntimeError::AlreadyExists { id: id.to_owned() });
        }
        shim::clear_control_files(&dir).map_err(Self::io(&dir))?;
        self.write_link(id, &dir)?;

        let args = ShimArgs {
            runtime: self.config.binary.clone(),
            root: self.config.root.clone(),
            bundle,
            id: id.to_owned(),
            dir: dir.clone(),
            start,
            log_max_bytes: self.config.log_limits.max_bytes,
            log_max_files: self.config.log_limits.max_files,
        };
        let mut child = self.take_shim()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A spare that died meanwhile fails here; the report says so.
            let _ = stdin.write_all(&shim::standby_input(&args)).await;
        }
        let shim_pid = child.id();
        let report = child.stdout.take().expect("the shim's stdout is piped");
        let outcome =
            match tokio::time::timeout(self.config.create_timeout, shim::read_report(report)).await
            {
                Ok(Ok(Some(pid))) => Ok(pid),
                Ok(Ok(None)) => {
                    // The shim closed its report without one: it failed.
                    let status = child.wait().await.ok();
                    Err(RuntimeError::Shim {
                        id: id.to_owned(),
                        message: Self::shim_failure(&dir, status),
                    })
                }
                Ok(Err(source)) => Err(RuntimeError::Io {
                    path: dir.clone(),
                    source,
                }),
                Err(_) => {
                    if let Some(pid) = shim_pid {
                        // The shim leads its own group: this takes the runtime too.
                        let _ = sysproc::kill_group(pid, libc::SIGKILL);
                    }
                    let _ = child.kill().await;
                    Err(RuntimeError::CreateTimeout {
                        id: id.to_owned(),
                        timeout: self.config.create_timeout,
                    })
                }
            };
        match outcome {
            Ok(pid) => {
                // Reap the shim whenever it ends; its record stays on disk.
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
                self.refill_spare();
                Ok(ContainerInfo {
                    id: id.to_owned(),
                    status: if start {
                        Status::Running
                    } else {
                        Status::Created
                    },
                    pid: Some(pid),
                    exit: None,
                })
            }
            Err(e) => {
                self.abandon(id).await;
                Err(e)
            }
        }
    }
}

impl OciRuntime for RuntimeCli {
    async fn create(&self, request: &CreateRequest) -> Result<ContainerInfo, RuntimeError> {
        self.launch(request, false).await
    }

    async fn run(&self, request: &CreateRequest) -> Result<ContainerInfo, RuntimeError> {
        self.launch(request, true).await
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        self.run("start", id, &[id]).await.map(drop)
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        validate_id(id)?;
        self.run("kill", id, &[id, &signal.to_string()])
            .await
            .map(drop)
    }

    async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        validate_id(id)?;
        // Both runtimes keep a container's state in `<root>/<id>`: without
        // it there is nothing to delete, and no process needs starting.
        if !self.known_to_runtime(id) {
            self.remove_link(id)?;
            return Err(RuntimeError::NotFound { id: id.to_owned() });
        }
        let args: &[&str] = if force { &["--force", id] } else { &[id] };
        self.run("delete", id, args).await?;
        self.remove_link(id)
    }

    async fn state(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        validate_id(id)?;
        if !self.known_to_runtime(id) {
            return Ok(None);
        }
        let stdout = match self.run("state", id, &[id]).await {
            Ok(stdout) => stdout,
            Err(RuntimeError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let state: RuntimeState =
            serde_json::from_slice(&stdout).map_err(|e| RuntimeError::Parse {
                binary: self.config.binary.clone(),
                command: "state",
                detail: e.to_string(),
            })?;
        self.merge("state", state).await.map(Some)
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let stdout = self.run("list", "", &["--format", "json"]).await?;
        // runc prints `null` when there are none.
        let states: Option<Vec<RuntimeState>> =
            serde_json::from_slice(&stdout).map_err(|e| RuntimeError::Parse {
                binary: self.config.binary.clone(),
                command: "list",
                detail: e.to_string(),
            })?;
        let mut infos = Vec::new();
        for state in states.unwrap_or_default() {
            infos.push(self.merge("list", state).await?);
        }
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(infos)
    }

    async fn wait(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        validate_id(id)?;
        // While the shim lives, its exit is the container's (it writes the
        // exit file first): sleep on a pidfd of the shim. Without a shim (it
        // was killed) ask the runtime now and then.
        loop {
            let shim = self
                .shim_dir(id)
                .and_then(|dir| ShimRecord::read(&dir).ok().flatten())
                .filter(ShimRecord::is_alive);
            let watched = match shim {
                Some(shim) => crate::sys::process::exited(shim.pid).await.is_ok(),
                None => false,
            };
            if !watched {
                match self.state(id).await? {
                    Some(info) if info.status == Status::Stopped => return Ok(Some(info)),
                    None => return Ok(None),
                    Some(_) => tokio::time::sleep(UNWATCHED_POLL).await,
                }
                continue;
            }
            match self.state(id).await? {
                Some(info) if info.status != Status::Stopped => continue,
                other => return Ok(other),
            }
        }
    }

    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        validate_id(id)?;
        if argv.is_empty() {
            return Err(RuntimeError::Command {
                binary: self.config.binary.clone(),
                command: "exec",
                id: id.to_owned(),
                message: "no command given".to_owned(),
            });
        }
        if !self.known_to_runtime(id) {
            return Err(RuntimeError::NotFound { id: id.to_owned() });
        }
        let log = self.call_log("exec");
        let pid_file = log.with_extension("pid");
        let mut child = self
            .command(&log, "exec")
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .args(argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                binary: self.config.binary.clone(),
                source,
            })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let run = async {
            let (out, err, status) = tokio::join!(
                read_capped(stdout, EXEC_OUTPUT_CAP),
                read_capped(stderr, EXEC_OUTPUT_CAP),
                child.wait()
            );
            (out, err, status)
        };
        let result = tokio::time::timeout(timeout, run).await;
        let errors = files::runtime_log_errors(&log);
        let exec_pid = files::read_pid(&pid_file).ok().flatten();
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_file(&pid_file);
        let (stdout, stderr, status) = match result {
            Ok(done) => done,
            Err(_elapsed) => {
                // Killing runc alone would leave the process running in
                // the container.
                if let Some(pid) = exec_pid {
                    let _ = sysproc::kill(pid, libc::SIGKILL);
                }
                let _ = child.kill().await;
                return Err(RuntimeError::ExecTimeout {
                    id: id.to_owned(),
                    timeout,
                });
            }
        };
        let io_err = |source| RuntimeError::Io {
            path: PathBuf::from(format!("exec in {id}")),
            source,
        };
        let status = status.map_err(io_err)?;
        if !errors.is_empty() {
            return Err(RuntimeError::Command {
                binary: self.config.binary.clone(),
                command: "exec",
                id: id.to_owned(),
                message: errors,
            });
        }
        let exit_code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => -1,
        };
        Ok(ExecOutput {
            exit_code,
            stdout: stdout.map_err(io_err)?,
            stderr: stderr.map_err(io_err)?,
        })
    }
}

/// Removes call logs left by an earlier agent process that was killed
/// during a call (their names carry that process's pid).
fn remove_stale_call_logs(dir: &Path) {
    let own = format!("-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().contains(&own) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Reads a stream to its end, keeping the first `cap` bytes.
async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return Ok(kept);
    };
    let mut buf = [0u8; 8192];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_capped_keeps_the_first_bytes_and_drains_the_rest() {
        let data = vec![7u8; 100_000];
        let kept = read_capped(Some(&data[..]), 10).await.expect("read");
        assert_eq!(kept, vec![7u8; 10]);
        let none = read_capped(None::<&[u8]>, 10).await.expect("read");
        assert!(none.is_empty());
    }

    #[test]
    fn call_logs_of_an_earlier_process_are_removed_and_our_own_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let own = dir
            .path()
            .join(format!("state-{}-0.log", std::process::id()));
        let stale = dir.path().join("state-999999999-0.log");
        std::fs::write(&own, "").expect("write");
        std::fs::write(&stale, "").expect("write");
        remove_stale_call_logs(dir.path());
        assert!(own.exists());
        assert!(!stale.exists());
    }
}
